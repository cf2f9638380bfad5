"""Every command in the ```bash blocks of the README and docs/*.md is checked here, so the examples stay true:
make targets exist, `cnnzoo` commands run (verbatim, from the venv), `dvc exp run -S` overrides
give a valid params.yaml, and `source .venv/bin/activate` names the environment the tests run in.
"""

import json
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnzoo import config
from tests.conftest import GIT, ROOT

BIN = Path(sys.executable).parent


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    blocks = [b for doc in DOCS for b in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S)]
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
    commands = by_program("source")
    assert commands and all(shlex.split(cmd)[1] == ".venv/bin/activate" for cmd in commands)
    assert (BIN / "activate").is_file() and (BIN / "dvc").is_file() and (BIN / "cnnzoo").is_file()


# `run` is the e2e test's; sample-folder writes into the project: the own-data test runs it.
@pytest.mark.slow  # a process each, some building every canonical network
@pytest.mark.parametrize("cmd", [c for c in by_program("cnnzoo")
                                 if words(c)[1] not in ("run", "sample-folder")])
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
    assert argv[1] in ("repro", "push", "pull", "status", "checkout") or argv[1:3] in (
        ["exp", "run"], ["exp", "show"], ["metrics", "show"], ["metrics", "diff"],
        ["plots", "show"], ["remote", "add"], ["remote", "modify"]), cmd
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


def own_data_recipe() -> list[str]:
    """The commands of the README's own-images recipe (its first bash block)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Your own images\n"):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    lines = [ln.split("  #")[0].strip() for ln in block.replace("\\\n", " ").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith(("#", "source "))]


def _registry(root: Path) -> tuple[list, list]:
    db = sqlite3.connect(root / "mlflow.db")
    try:
        versions = db.execute("SELECT name, version FROM model_versions ORDER BY version").fetchall()
        aliases = db.execute("SELECT name, alias, version FROM registered_model_aliases").fetchall()
    finally:
        db.close()
    return versions, aliases


@pytest.mark.e2e
def test_own_data_recipe_on_real_digits_leaves_what_ships_alone(default_project):
    """The README's recipe, verbatim, on a class folder of real images (scikit-learn's UCI
    digits) after the committed default run: two families, classification and verification
    only, a report of that data alone, @mobile and the registered versions untouched; then
    `cnnzoo promote` ships it with tags naming its data, and the default run comes back whole."""
    root, env = default_project
    env = {**env, "COLUMNS": "200"}

    def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
        program = {"cnnzoo": [sys.executable, "-m", "cnnzoo.cli"],
                   "dvc": [sys.executable, "-m", "dvc"], "git": list(GIT)}[argv[0]]
        out = subprocess.run([*program, *argv[1:]], cwd=root, env=env, capture_output=True,
                             text=True, timeout=1500)
        assert not check or out.returncode == 0, (argv, out.stdout[-3000:], out.stderr[-3000:])
        return out

    if not (root / "reports/headline.json").is_file():  # this test alone: the default run first
        run("cnnzoo", "run")
    run("git", "add", "-A")  # dvc.lock, committed as DVC projects do
    run("git", "commit", "-q", "--allow-empty", "-m", "the default run")
    default_model = (root / "models/finetune/lenet5.keras").read_bytes()
    default_headline = json.loads((root / "reports/headline.json").read_text())
    before = _registry(root)
    assert ("cnnzoo-mobile", "mobile") in [a[:2] for a in before[1]]  # the default shipped

    outputs = {}
    for cmd in own_data_recipe():
        outputs[cmd.split()[1] if cmd.startswith("cnnzoo") else " ".join(cmd.split()[:3])] = \
            run(*shlex.split(cmd))
    exp = outputs["dvc exp run"].stdout + outputs["dvc exp run"].stderr  # stages log to stderr
    assert "scenes@" not in exp and "segment@" not in exp and "detect@" not in exp
    assert "Running stage 'verify@siamese'" in exp and "Running stage 'report'" in exp
    assert "not registered: it is the DVC experiment digits" in exp
    assert "cnnzoo-lenet5: no new registered version, it is the DVC experiment digits" in exp
    assert _registry(root) == before  # nothing registered, @mobile where it was

    meta = json.loads((root / "data/prepared/meta.json").read_text())
    assert meta["source"] == "folder" and meta["image_shape"] == [32, 32, 1]  # grey kept
    assert meta["source_image_shape"][:2] == [24, 24]  # padded, not resized
    report = (root / "reports/leaderboard.md").read_text()
    data = f"Data: `folder:data/digits` (digest `{meta['digest']}`)."
    assert "## Segmentation" not in report and "## Detection" not in report
    assert "## Verification" in report and report.count(data) == 2 and "Other data" not in report
    board = report[:report.index("## Accuracy against cost")]
    assert "| lenet5 |" in board and "| resnet20 |" in board and "| mobilenet_v2 |" not in board
    headline = json.loads((root / "reports/headline.json").read_text())
    assert set(headline) == {"lenet5", "resnet20", "vgg11", "verify"}

    shown = outputs["dvc exp show"].stdout
    assert max(len(line) for line in shown.splitlines()) <= 200, shown
    rows = {line.split()[0].strip("│ "): line for line in shown.splitlines() if "main" in line
            or "[digits]" in line}
    assert f"{default_headline['lenet5']['acc']}" in rows["main"], shown
    assert any(f"{headline['resnet20']['acc']}" in line for line in rows.values()), shown
    diff = outputs["dvc metrics diff"].stdout
    assert "reports/headline.json" in diff and "resnet20.acc" in diff and "lenet5.acc" in diff
    assert max(len(line) for line in diff.splitlines()) <= 120, diff

    # Shipping is a decision: promote, then @mobile moves, to a version tagged with its data.
    promoted = run("cnnzoo", "promote", "resnet20").stdout
    assert "cnnzoo-mobile@mobile is version" in promoted
    db = sqlite3.connect(root / "mlflow.db")
    version = db.execute("SELECT version FROM registered_model_aliases WHERE alias = 'mobile'"
                         ).fetchone()[0]
    tags = dict(db.execute("SELECT key, value FROM model_version_tags WHERE version = ?",
                           (version,)).fetchall())
    description = db.execute("SELECT description FROM model_versions WHERE version = ?",
                             (version,)).fetchone()[0]
    db.close()
    assert tags["arch"] == "resnet20" and tags["data_source"] == "folder:data/digits"
    assert tags["data_digest"] == meta["digest"] and tags["classes"] == "1,3,5,7,9"
    assert float(tags["accuracy_int8"]) == headline["resnet20"]["int8"] and tags["git_commit"]
    assert "folder:data/digits" in description
    assert run("cnnzoo", "promote", "nosuchnet", check=False).returncode == 2

    # Back to the default: its outputs come back from DVC's cache, byte for byte.
    run("git", "checkout", "--", "params.yaml", "dvc.lock")
    run("dvc", "checkout")
    assert (root / "models/finetune/lenet5.keras").read_bytes() == default_model
    assert json.loads((root / "reports/headline.json").read_text()) == default_headline
