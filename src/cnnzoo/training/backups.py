"""Where a killed training stage's backup lives, and when it may be trusted.

A backup (Keras' BackupAndRestore state plus the partial history) is resumed only by a run that
would have produced the same result: its key covers the stage's settings, the content of its
input files (prepared splits, augmented copies, the model it starts from) and the code that
trains (this package's source, TensorFlow's and Keras' versions). `backup_dir` discards, with one
log line saying why, every other backup of the same stage; `prune_committed` removes the backups
of stages whose outputs DVC has committed (trained, resumed or restored from its run cache).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import shutil
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from cnnzoo.files import digests, read_json, write_json

log = logging.getLogger(__name__)

BACKUP_ROOT = Path(".cache/backup")
KEY_FILE = "key.json"


@dataclass(frozen=True)
class StageInputs:
    """The running stage as DVC names it (`pretrain@lenet5`) and its input files' digests."""

    stage: str = ""
    files: dict[str, str] = field(default_factory=dict)


# Set by `stages.common.run_stage` for a training stage, read by `backup_dir`.
CURRENT: ContextVar[StageInputs | None] = ContextVar("cnnzoo_stage_inputs", default=None)


def enter_stage(stage: str, paths) -> None:
    """Record the running stage and digest its input files (folders as a whole)."""
    CURRENT.set(StageInputs(stage, digests(p for p in paths if p)))


def _sha(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@functools.cache
def code_version() -> str:
    """Digest of the code a training run executes: every module of this package, plus the
    TensorFlow and Keras releases (a new release may compute other numbers)."""
    h = hashlib.sha256()
    package = Path(__file__).parent.parent  # cnnzoo/
    for f in sorted(package.rglob("*.py")):
        h.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes())
    for dist in ("keras", "tensorflow", "tensorflow-cpu"):
        try:
            h.update(f"{dist}=={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            pass
    return h.hexdigest()


def _key(path: Path) -> dict:
    try:
        return read_json(path / KEY_FILE)
    except (OSError, ValueError):
        return {}


def _why_stale(old: dict, new: dict) -> str:
    if not old:
        return f"it has no {KEY_FILE} (made by an older cnnzoo)"
    changed = sorted(p for p in {*old.get("inputs", {}), *new["inputs"]}
                     if old.get("inputs", {}).get(p) != new["inputs"].get(p))
    reasons = [f"input {', '.join(changed)} changed"] if changed else []
    reasons += ["the stage's params differ"] if old.get("settings") != new["settings"] else []
    reasons += ["the code changed"] if old.get("code") != new["code"] else []
    return "; ".join(reasons) or "its key differs"  # e.g. a damaged key file


def _stage_backups(name: str) -> list[Path]:
    pattern = re.compile(re.escape(name) + r"-[0-9a-f]{12}")
    return sorted(p for p in BACKUP_ROOT.glob(f"{name}-*") if pattern.fullmatch(p.name))


def backup_dir(name: str, settings: dict) -> Path:
    """The folder where run `name` (`pretrain-lenet5`) keeps its backup under `settings` (the
    stage's params), the running stage's inputs and the code. Any other backup of the same run
    is discarded first: resuming it would mix two trainings into one model."""
    inputs = CURRENT.get() or StageInputs()
    key = {"stage": inputs.stage, "settings": _sha(settings), "inputs": inputs.files,
           "code": code_version()}
    path = BACKUP_ROOT / f"{name}-{_sha({k: v for k, v in key.items() if k != 'stage'})[:12]}"
    for other in _stage_backups(name):
        if other != path:
            log.info("discarding the backup in %s: %s", other, _why_stale(_key(other), key))
            shutil.rmtree(other, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / KEY_FILE, key)
    return path


def _committed(stage: str, lock: dict, root: Path) -> bool:
    """Whether dvc.lock records `stage` with outputs that are on disk as recorded."""
    outs = ((lock.get("stages") or {}).get(stage) or {}).get("outs") or []
    if not outs:
        return False
    for out in outs:
        path, md5 = root / out["path"], str(out.get("md5", ""))
        if not path.exists():
            return False
        # Folders: present is enough (DVC removes a stage's outputs before it runs it).
        if path.is_file() and md5 and hashlib.md5(path.read_bytes()).hexdigest() != md5:
            return False
    return True


def prune_committed(root: str | Path = ".") -> list[str]:
    """Remove the backups of stages whose outputs DVC has committed since (dvc.lock holds them
    and they are on disk): a later run with the same key would otherwise resume a training that
    was superseded. Returns the folders removed."""
    root = Path(root)
    backups = [p for p in sorted((root / BACKUP_ROOT).glob("*")) if (p / KEY_FILE).is_file()]
    if not backups or not (root / "dvc.lock").is_file():
        return []
    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    removed = []
    for path in backups:
        stage = _key(path).get("stage", "")
        if stage and _committed(stage, lock, root):
            log.info("removing the backup in %s: %s's outputs are committed (dvc.lock)",
                     path.relative_to(root), stage)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed

