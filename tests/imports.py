"""The project files a Python file runs, found by reading its imports (no import is executed):
what a DVC stage's script depends on. Test helper for tests/test_dvc_deps.py."""

from __future__ import annotations

import ast
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
    """The __init__.py files Python runs before module `name`: every parent package's."""
    parts = name.split(".")
    return [f for i in range(1, len(parts)) if (f := _module_file(".".join(parts[:i])))]


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
                todo += [module, *_packages(name)]
        if f.is_relative_to(SRC):
            seen |= _data_files(f)
    return seen
