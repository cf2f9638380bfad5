"""scripts/install-dataset.sh, the one installer of the embedded dataset (make setup, .ci/run).

Never touches the real apt: apt-get is either absent from PATH or a stand-in script that records
its arguments, and the package folder is redirected with CNNZOO_SYSTEM_DATA_DIR.
"""

import os
import shutil
import stat
import subprocess

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "install-dataset.sh"
BASH = shutil.which("bash")
# As a non-root user without passwordless sudo the script stops before apt (first test's path).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="apt is only tried as root or with sudo")


def run(tmp_path, path: str, **env):
    full = {"PATH": path, "HOME": str(tmp_path), "CNNZOO_SYSTEM_DATA_DIR": str(tmp_path / "fm"),
            **env}
    return subprocess.run([BASH, str(SCRIPT)], env=full, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_without_apt_exits_0_with_one_line_saying_how_to_provide_the_data(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    out = run(tmp_path, str(empty))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and not out.stderr
    assert "no apt-get" in lines[0] and "apt-get install dataset-fashion-mnist" in lines[0]
    assert "CNNZOO_DATA_MIRROR" in lines[0]


def test_present_dataset_is_silent(tmp_path):
    (tmp_path / "fm").mkdir()
    out = run(tmp_path, str(tmp_path))
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


def _fake_apt(tmp_path, body: str) -> str:
    """A bin folder with a stand-in apt-get plus the few real tools the script calls."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(f"#!{BASH}\necho \"$@\" >> {tmp_path}/apt-calls\n{body}\n")
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)
    for tool in ("timeout", "env", "mktemp", "rm", "tail", "id", "mkdir"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    return str(bin_dir)


@needs_root
def test_as_root_installs_the_package_and_updates_lists_once_when_needed(tmp_path):
    # The first install fails (stale package lists), update succeeds, the retry installs.
    body = (f'case "$*" in *update*) mkdir -p {tmp_path}/updated; exit 0;; esac\n'
            f'[ -d {tmp_path}/updated ] || exit 100\n'
            f'mkdir -p {tmp_path}/fm')
    out = run(tmp_path, _fake_apt(tmp_path, body))
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "apt-calls").read_text().splitlines()
    assert [c.split()[-2:] for c in calls] == [["--no-install-recommends", "dataset-fashion-mnist"],
                                               ["-qq", "update"],
                                               ["--no-install-recommends", "dataset-fashion-mnist"]]
    assert all("-y" in c for c in calls)
    assert "installed" in out.stdout.splitlines()[-1]


@needs_root
def test_failing_apt_still_exits_0_with_the_hint(tmp_path):
    out = run(tmp_path, _fake_apt(tmp_path, 'echo "E: Unable to locate package" >&2; exit 100'))
    assert out.returncode == 0
    last = out.stdout.strip().splitlines()[-1]
    assert "apt-get failed: E: Unable to locate package" in last
    assert "CNNZOO_DATA_MIRROR" in last


def test_opt_out_never_calls_apt(tmp_path):
    out = run(tmp_path, _fake_apt(tmp_path, "exit 0"), CNNZOO_NO_APT="1")
    assert out.returncode == 0 and "CNNZOO_NO_APT" in out.stdout
    assert not (tmp_path / "apt-calls").exists()
