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
    lines = [ln.split("  #")[0].strip() for block in blocks
             for ln in block.replace("\\\n", " ").splitlines()]  # continued lines joined
    return [ln for ln in lines if ln and not ln.startswith("#")]


COMMANDS = readme_commands()


def words(cmd: str) -> list[str]:
    """The command's words without leading VAR=value settings, `.venv/bin/` dropped from the
    program (it is this environment's)."""
    argv = shlex.split(cmd)
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        argv = argv[1:]
    return [argv[0].removeprefix(".venv/bin/"), *argv[1:]]


def by_program(*programs: str) -> list[str]:
    return [c for c in COMMANDS if words(c)[0] in programs]


def test_every_readme_command_is_covered():
    known = ("make", "source", "cnnzoo", "dvc", "pip")
    assert COMMANDS and not [c for c in COMMANDS if words(c)[0] not in known]


@pytest.mark.parametrize("cmd", by_program("make"))
def test_make_targets_exist(cmd):
    targets = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
    assert words(cmd)[1] in targets


def test_activate_script_is_the_one_that_runs_the_tests():
    (cmd,) = by_program("source")
    assert shlex.split(cmd)[1] == ".venv/bin/activate"
    assert (BIN / "activate").is_file() and (BIN / "dvc").is_file() and (BIN / "cnnzoo").is_file()


@pytest.mark.parametrize("cmd", [c for c in by_program("cnnzoo")
                                 if words(c)[1] != "run"])  # `run` is the e2e test's
def test_cnnzoo_commands_run_verbatim(cmd):
    argv = words(cmd)
    out = subprocess.run([str(BIN / "cnnzoo"), *argv[1:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()


@pytest.mark.parametrize("cmd", by_program("dvc"))
def test_dvc_commands_use_valid_params(cmd):
    """Commands the tests run for real (repro, exp run -S, the remote's push/pull/status in
    test_pipeline_e2e) or that only read; `-S` overrides make a valid params.yaml."""
    argv = words(cmd)
    assert argv[1] in ("repro", "push", "pull", "status") or argv[1:3] in (
        ["exp", "run"], ["metrics", "show"], ["plots", "show"], ["remote", "add"],
        ["remote", "modify"]), cmd
    config.parse(with_overrides(argv), cmd)


def with_overrides(argv: list[str]) -> dict:
    """params.yaml with a command's `-S key=value` overrides applied, as DVC applies them."""
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
    return raw


@pytest.mark.parametrize("cmd", by_program("pip"))
def test_pip_commands_install_valid_requirements(cmd):
    from packaging.requirements import Requirement

    argv = words(cmd)
    assert argv[1] == "install"
    for req in argv[2:]:
        Requirement(req)  # raises on a malformed one
