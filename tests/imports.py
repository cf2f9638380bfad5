"""The project files a Python file runs, found by reading its imports (no import is executed):
what a DVC stage's script depends on (tests/test_dvc_deps.py). `python -m tests.imports
pipelines/<stage>.py` prints the code deps dvc.yaml should list for a stage run by that script."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def _module_file(name: str) -> Path | None:
    """src/<name as path>.py or its package's __init__.py, if the project has it."""
    base = SRC.joinpath(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _packages(name: str) -> list[Path]:
    """The __init__.py files Python runs before module `name`: every parent package's that has
    code (one that is only a docstring runs nothing a stage could depend on)."""
    parts = name.split(".")
    return [f for i in range(1, len(parts)) if (f := _module_file(".".join(parts[:i])))
            and _has_code(f)]


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def _imported(path: Path) -> set[str]:
    """Every module name `path` imports anywhere (top level or inside functions), including
    `from package import module` names that are modules."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _data_files(module: Path) -> set[Path]:
    """Non-Python files beside `module` that it names (e.g. config/catalogue.json)."""
    text = module.read_text()
    return {f for f in module.parent.iterdir() if f.suffix not in (".py", ".pyc")
            and f.is_file() and f.name in text}


def closure(script: Path) -> set[Path]:
    """`script` and every project file it runs: cnnzoo modules (with the packages around them
    and the data files they read) and helper scripts beside it (pipelines/_venv.py)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in _imported(f):
            local = script.parent / f"{name}.py"
            if f.parent == script.parent and local.is_file():
                todo.append(local)
            elif name.split(".")[0] == "cnnzoo" and (module := _module_file(name)):
                if module.name != "__init__.py" or _has_code(module):
                    todo.append(module)
                todo += _packages(name)
        if f.is_relative_to(SRC):
            seen |= _data_files(f)
    return seen


# Foundation packages a stage depends on as a whole folder when it imports any of their modules
# (most stages use most of them); every other module is listed file by file.
FOLDERS = ("config", "data", "models", "training")


def as_deps(files: set[Path]) -> list[str]:
    """`files` as dvc.yaml lists code deps: scripts, then cnnzoo modules (FOLDERS as folders)."""
    deps = set()
    for f in files:
        rel = f.relative_to(SRC / "cnnzoo") if f.is_relative_to(SRC) else None
        if rel is not None and len(rel.parts) > 1 and rel.parts[0] in FOLDERS:
            deps.add(f"src/cnnzoo/{rel.parts[0]}")
        else:
            deps.add(f.relative_to(ROOT).as_posix())
    return sorted(deps, key=lambda d: (not d.startswith("pipelines/"), d))


if __name__ == "__main__":
    for script in sys.argv[1:]:
        print(f"{script}:", *(f"  - {d}" for d in as_deps(closure(ROOT / script))), sep="\n")
