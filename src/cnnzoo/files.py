"""Atomic, byte-reproducible file writes, and content digests.

Atomic: an interrupted stage never leaves a half-written output behind. Reproducible: the same
data give the same bytes whatever the process, `PYTHONHASHSEED` or clock, so DVC reruns nothing
downstream of a stage whose result did not change (zip archives get fixed member times, JSON
sorted keys).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

# What every zip member written here is dated: the earliest time the format can hold.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps `path`'s suffix because some writers (Keras, numpy) insist on it.
    Works for files and directories alike.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.unlink()  # writers create it themselves (a file or a directory)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def read_csv(path: str | os.PathLike) -> list[dict]:
    """A CSV file's rows as dicts of strings (the reports' tables, the training histories)."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def csv_text(rows: list[dict], fields) -> str:
    """`rows` as CSV text with the header `fields` (the reports' and sweep's tables)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _zip_member(archive: zipfile.ZipFile, name: str, data: bytes,
                compression: int = zipfile.ZIP_DEFLATED) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """`np.savez_compressed`'s format (what `np.load` reads) without its wall-clock member
    times, which made every rewrite of the same arrays new bytes."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
            _zip_member(archive, f"{name}.npy", buf.getvalue())


def rewrite_zip(path: str | os.PathLike,
                transform: Callable[[str, bytes], bytes] = lambda name, data: data) -> None:
    """Rewrite the zip archive at `path` in place (atomically) with every member dated
    `ZIP_EPOCH`, in the same order and compression, its content passed through
    `transform(name, data)`."""
    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for info, data in members:
            _zip_member(archive, info.filename, transform(info.filename, data), info.compress_type)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, or of a folder's files (relative names and contents, in
    name order), so a folder that DVC would see as changed gets a new digest."""
    path = Path(path)
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        if f != path:  # a folder's member: its name and size delimit its content
            h.update(f"{f.relative_to(path).as_posix()}\0{f.stat().st_size}\0".encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def arrays_digest(arrays: dict[str, tuple[np.ndarray, ...]]) -> str:
    """A short SHA-256 of named arrays (a dataset's splits): what the report and the model
    registry name data by, so two runs on other data never pass for one."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        for a in arrays[name]:
            h.update(f"{name}\0{a.dtype}\0{a.shape}\0".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def digests(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """{path: file_digest(path)} for each path given."""
    return {str(p): file_digest(p) for p in paths}
