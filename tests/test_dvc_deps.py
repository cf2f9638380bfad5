"""dvc.yaml's code deps are exactly what each stage's script runs: its project imports,
transitively (tests/imports.py reads them without running anything). A module a stage runs but
does not list would let `dvc repro` serve results of old code; one it lists but does not run
would rerun the stage for nothing."""

import re

import pytest
import yaml

from tests.conftest import ROOT
from tests.imports import FOLDERS, as_deps, closure

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _script(name: str) -> str:
    return re.search(r"python (pipelines/\w+\.py)", STAGES[name]["cmd"]).group(1)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_depends_on_exactly_the_code_its_script_runs(name):
    listed = [d for d in STAGES[name]["deps"] if d.startswith(("src/", "pipelines/"))]
    expected = as_deps(closure(ROOT / _script(name)))
    assert sorted(listed) == sorted(expected), (
        f"{name}: missing {sorted(set(expected) - set(listed))}, not run "
        f"{sorted(set(listed) - set(expected))}; `python -m tests.imports {_script(name)}` "
        "prints its deps")


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
