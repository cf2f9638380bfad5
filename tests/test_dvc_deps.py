"""Each stage's code dep is its script's fingerprint (data/code/<script>.json, the `code`
stage), and the `code` stage depends on exactly the files the scripts run: their project
imports, transitively (cnnzoo/tools/closure.py reads them without running anything). A module a
script runs but the `code` stage does not list would let `dvc repro` serve results of old code;
one it lists but no script runs would rerun the stage for nothing."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnzoo.tools.closure import FOLDERS, as_deps, closure, fingerprint
from tests.conftest import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
CODE = STAGES["code"]
SCRIPTS = re.findall(r"pipelines/\w+\.py", CODE["cmd"])[1:]  # after pipelines/fingerprint.py itself


def _script(name: str) -> str:
    return re.search(r"python (pipelines/\w+\.py)", STAGES[name]["cmd"]).group(1)


def _code_deps(name: str) -> list[str]:
    return [d for d in STAGES[name]["deps"] if d.startswith(("src/", "pipelines/", "data/code/"))]


@pytest.mark.parametrize("name", sorted(set(STAGES) - {"code", "sizes"}))
def test_a_stage_depends_on_its_scripts_fingerprint_and_no_code_file(name):
    script = _script(name)
    assert script in SCRIPTS, f"{name}: the code stage does not fingerprint {script}"
    assert _code_deps(name) == [f"data/code/{Path(script).stem}.json"]


def test_the_code_stage_depends_on_exactly_what_the_scripts_run():
    listed = CODE["deps"]
    expected = {d for s in [*SCRIPTS, "pipelines/fingerprint.py"] for d in as_deps(closure(ROOT / s))}
    assert sorted(listed) == sorted(expected), (
        f"code: missing {sorted(expected - set(listed))}, not run {sorted(set(listed) - expected)}; "
        "`python -m cnnzoo.tools.closure pipelines/<script>.py` prints a script's deps")
    assert CODE["outs"] == [f"data/code/{Path(s).stem}.json" for s in SCRIPTS]


def test_sizes_lists_its_code_files_because_its_outputs_live_in_git():
    assert sorted(_code_deps("sizes")) == sorted(as_deps(closure(ROOT / "pipelines/sizes.py")))


def test_the_closure_follows_imports_inside_functions_and_skips_empty_packages():
    """What the deps rest on: a lazy import counts (stages import TensorFlow-heavy modules
    inside functions), a docstring-only package __init__ does not, a package with code does."""
    files = {p.relative_to(ROOT).as_posix() for p in closure(ROOT / "pipelines/train.py")}
    assert "src/cnnzoo/training/distribute.py" in files  # imported inside `trains`' set-up
    assert "src/cnnzoo/stages/__init__.py" not in files  # a docstring only
    assert {"src/cnnzoo/__init__.py", "src/cnnzoo/models/__init__.py",
            "pipelines/_venv.py", "src/cnnzoo/config/catalogue.json"} <= files
    assert "src/cnnzoo/stages/verify.py" not in files and "src/cnnzoo/tools/runner.py" not in files


def test_foundation_packages_are_folder_deps_and_the_rest_are_files():
    deps = as_deps(closure(ROOT / "pipelines/verify.py"))
    assert {f"src/cnnzoo/{f}" for f in FOLDERS} <= set(deps)
    assert "src/cnnzoo/stages/verify.py" in deps and "src/cnnzoo/stages" not in deps
    assert deps[:2] == ["pipelines/_venv.py", "pipelines/verify.py"]


def test_a_fingerprint_hashes_every_file_its_script_runs_and_changes_with_one_of_them(tmp_path):
    """The code stage's output: a folder dep contributes each of its sources (no bytecode), and
    only the files the script runs (the end-to-end test edits one and follows it through DVC)."""
    train = fingerprint(ROOT / "pipelines/train.py")
    assert train["script"] == "pipelines/train.py"
    assert "src/cnnzoo/training/loop.py" in train["files"]
    assert "src/cnnzoo/stages/verify.py" not in train["files"]
    assert not any("__pycache__" in f for f in train["files"])
    out = subprocess.run([sys.executable, str(ROOT / "pipelines/fingerprint.py"), "--out", str(tmp_path),
                          "pipelines/train.py", "pipelines/verify.py"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "train.json").read_text()) == train
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.json", "verify.json"]


def test_no_stage_script_shadows_a_standard_library_module():
    """pipelines/ is first on a stage's sys.path: a script named like a standard module (a
    `code.py` did) runs, arguments and all, inside any stage whose imports load that module."""
    names = {p.stem for p in (ROOT / "pipelines").glob("*.py")}
    assert not names & set(sys.stdlib_module_names)
