"""The project files a Python file runs, found by reading its imports (no import is executed):
what a DVC stage's script depends on. The `code` stage writes each script's fingerprint (the
hashes of those files) to data/code/<script>.json, and each stage depends on its script's
fingerprint: one dep instead of ~17 files, which halves dvc.lock (DVC rewrites all of it after
every stage). `python -m cnnzoo.tools.closure
pipelines/<stage>.py` prints the code deps of a script (the `code` stage lists their union)."""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # an editable install: the checkout
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


def _files(dep: Path) -> list[Path]:
    """A dep's files: itself, or a folder's sources (not Python's bytecode caches)."""
    if dep.is_file():
        return [dep]
    return sorted(f for f in dep.rglob("*") if f.is_file() and "__pycache__" not in f.parts)


def fingerprint(script: Path) -> dict:
    """`script`'s code deps (`as_deps`) and the SHA-256 of every file in them: what its stages'
    results rest on. Equal fingerprints, byte for byte, mean the same code runs."""
    files = {f.relative_to(ROOT).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
             for dep in as_deps(closure(script)) for f in _files(ROOT / dep)}
    return {"script": script.relative_to(ROOT).as_posix(), "files": dict(sorted(files.items()))}


if __name__ == "__main__":
    for script in sys.argv[1:]:
        # The list to read or paste, not a log line: plain standard output.
        sys.stdout.write("\n".join([f"{script}:", *(f"  - {d}" for d in
                                                    as_deps(closure(ROOT / script)))]) + "\n")
