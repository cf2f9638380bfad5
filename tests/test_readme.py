"""Every command in the README's ```bash blocks is checked here, so the examples stay true:
make targets exist, `cnnzoo` commands run (verbatim, from the venv), `dvc exp run -S` overrides
give a valid params.yaml, and `source .venv/bin/activate` names the environment the tests run in.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnzoo import config
from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [ln.split("  #")[0].strip() for block in blocks for ln in block.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


COMMANDS = readme_commands()


def by_program(*programs: str) -> list[str]:
    return [c for c in COMMANDS if shlex.split(c)[0] in programs]


def test_every_readme_command_is_covered():
    known = ("make", "source", "cnnzoo", ".venv/bin/cnnzoo", "dvc")
    assert COMMANDS and not [c for c in COMMANDS if shlex.split(c)[0] not in known]


@pytest.mark.parametrize("cmd", by_program("make"))
def test_make_targets_exist(cmd):
    targets = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
    assert shlex.split(cmd)[1] in targets


def test_activate_script_is_the_one_that_runs_the_tests():
    (cmd,) = by_program("source")
    assert shlex.split(cmd)[1] == ".venv/bin/activate"
    assert (BIN / "activate").is_file() and (BIN / "dvc").is_file() and (BIN / "cnnzoo").is_file()


@pytest.mark.parametrize("cmd", [c for c in by_program("cnnzoo", ".venv/bin/cnnzoo")
                                 if shlex.split(c)[1] != "run"])  # `run` is the e2e test's
def test_cnnzoo_commands_run_verbatim(cmd):
    argv = shlex.split(cmd)
    out = subprocess.run([str(BIN / "cnnzoo"), *argv[1:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()


@pytest.mark.parametrize("cmd", by_program("dvc"))
def test_dvc_commands_use_valid_params(cmd):
    argv = shlex.split(cmd)
    assert argv[1:3] in (["exp", "run"], ["repro"], ["metrics", "show"], ["plots", "show"])
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for i, arg in enumerate(argv):
        if arg != "-S":
            continue
        key, value = argv[i + 1].split("=", 1)
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node[part]
        assert last in node, f"{key} is not in params.yaml"
        node[last] = yaml.safe_load(value)  # DVC parses -S values as YAML too
    config.parse(raw, cmd)
