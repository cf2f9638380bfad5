"""Find, download and verify dataset files.

Sources are tried in order: `$CNNZOO_DATA_MIRROR` (a folder or an http(s)/file URL), the Debian
package folder, then the canonical URLs. A file is verified against the SHA-256 of its
*decompressed* payload where that is published (gzip wrappers differ between mirrors), otherwise
against the MD5 its authors publish for the archive as downloaded (MNIST's .gz files, the CIFAR
tarballs), and written atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cnnzoo.files import atomic_path

log = logging.getLogger(__name__)

MIRROR_ENV = "CNNZOO_DATA_MIRROR"
OFFLINE_ENV = "CNNZOO_OFFLINE"  # set to 1 to never try the canonical URLs (tests, air-gapped runs)


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset. `name` and `size` describe the stored payload (decompressed when
    `decompress`); at least one of `sha256` (of that payload) and `archive_md5` (of the bytes as
    published, e.g. the .gz) must be given."""

    name: str  # stored file name, e.g. "train-images-idx3-ubyte"
    sha256: str | None
    size: int
    archive_md5: str | None = None
    decompress: bool = True  # gunzip what is downloaded (IDX); False keeps tarballs as they are

    @property
    def remote_names(self) -> tuple[str, ...]:
        return (self.name + ".gz", self.name) if self.decompress else (self.name,)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: tuple[DataFile, ...]
    urls: tuple[str, ...]  # canonical base URLs
    system_dir: str | None = None  # where a distribution package installs it
    package: str | None = None  # that package's name, for the error message


FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    files=(
        DataFile("train-images-idx3-ubyte",
                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
        DataFile("train-labels-idx1-ubyte",
                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
        DataFile("t10k-images-idx3-ubyte",
                 "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
        DataFile("t10k-labels-idx1-ubyte",
                 "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
    ),
    urls=(
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    system_dir="/usr/share/datasets/fashion-mnist",
    package="dataset-fashion-mnist",
)

# MNIST's authors publish the .gz files; their MD5s are the reference (no payload SHA-256 is).
MNIST = DatasetSpec(
    name="mnist",
    files=(
        DataFile("train-images-idx3-ubyte", None, 47040016, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        DataFile("train-labels-idx1-ubyte", None, 60008, "d53e105ee54ea40749a09fcbcd1e9432"),
        DataFile("t10k-images-idx3-ubyte", None, 7840016, "9fb629c4189551a2d022fa330f9573f3"),
        DataFile("t10k-labels-idx1-ubyte", None, 10008, "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    urls=("https://ossci-datasets.s3.amazonaws.com/mnist/",
          "https://storage.googleapis.com/cvdf-datasets/mnist/"),
)

# The *binary* CIFAR versions: fixed-size records, nothing to unpickle.
CIFAR10 = DatasetSpec(
    name="cifar10",
    files=(DataFile("cifar-10-binary.tar.gz",
                    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171,
                    "c32a1d4ab5d03f1284b67883e8d87530", decompress=False),),
    urls=("https://www.cs.toronto.edu/~kriz/",),
)
CIFAR100 = DatasetSpec(
    name="cifar100",
    files=(DataFile("cifar-100-binary.tar.gz", None, 168513733,
                    "03b5dce01913d631647c71ecec9e9cb8", decompress=False),),
    urls=("https://www.cs.toronto.edu/~kriz/",),
)


class DataUnavailableError(RuntimeError):
    """No source could provide a verified copy of a file."""


class ChecksumError(ValueError):
    """A payload's SHA-256 or size differs from the expected one."""


def default_sources(spec: DatasetSpec) -> list[str]:
    mirror = os.environ.get(MIRROR_ENV)
    sources = [mirror] if mirror else []
    if spec.system_dir:
        sources.append(spec.system_dir)
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return sources
    return sources + list(spec.urls)


def _how_to_get(spec: DatasetSpec) -> str:
    ways = [f"  1. set {MIRROR_ENV} to a folder or URL holding the files (optionally .gz)"]
    if spec.system_dir:
        ways.append(f"  2. install the system package: apt-get install {spec.package}"
                    f" (provides {spec.system_dir})")
    ways.append("  3. allow network access to " + " or ".join(spec.urls))
    return "Ways to provide it:\n" + "\n".join(ways)


def _is_gzip(raw: bytes) -> bool:
    return raw[:2] == b"\x1f\x8b"


def _download(url: str) -> bytes:
    """Stream a URL into memory with a progress bar (files here are at most tens of MB)."""
    with urllib.request.urlopen(url, timeout=60) as resp, tempfile.TemporaryFile() as buf:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                  disable=None, leave=False) as bar:
            while chunk := resp.read(1 << 20):
                buf.write(chunk)
                bar.update(len(chunk))
        buf.seek(0)
        return buf.read()


def _read_from(source: str, f: DataFile) -> bytes:
    """Read one of `f.remote_names` from a folder or URL; FileNotFoundError when absent."""
    shown = f"{f.name}[.gz]" if f.decompress else f.name
    if "://" in source:
        base = source.rstrip("/") + "/"
        last: Exception | None = None
        for candidate in f.remote_names:
            try:
                return _download(base + candidate)
            except urllib.error.HTTPError as err:
                last = err
                if err.code != 404:
                    break
        raise FileNotFoundError(f"{base}{shown}: {last}")
    folder = Path(source)
    for candidate in f.remote_names:
        if (folder / candidate).is_file():
            return (folder / candidate).read_bytes()
    raise FileNotFoundError(f"{folder / shown} does not exist")


def _mismatch(name: str, origin: str, algo: str, expected: str, got: str, detail: str = ""):
    return ChecksumError(f"checksum mismatch for {name} from {origin}: expected {algo} "
                         f"{expected}, got {got}{detail}")


def verify_download(raw: bytes, expected: DataFile, origin: str) -> bytes:
    """Check the bytes as downloaded and return the payload to store."""
    if expected.archive_md5 and (_is_gzip(raw) or not expected.decompress):
        digest = hashlib.md5(raw).hexdigest()
        if digest != expected.archive_md5:
            raise _mismatch(expected.name, origin, "md5", expected.archive_md5, digest)
    elif expected.sha256 is None:
        raise ChecksumError(f"{expected.name} from {origin} is not the published archive and has "
                            "no payload checksum to verify; provide the .gz file")
    payload = gzip.decompress(raw) if expected.decompress and _is_gzip(raw) else raw
    verify(payload, expected, origin)
    return payload


def verify(payload: bytes, expected: DataFile, origin: str) -> None:
    """Size, and SHA-256 where published, of a stored payload."""
    if expected.sha256 is not None:
        digest = hashlib.sha256(payload).hexdigest()
        if digest != expected.sha256 or len(payload) != expected.size:
            raise _mismatch(expected.name, origin, "sha256", f"{expected.sha256} ({expected.size} B)",
                            f"{digest} ({len(payload)} B)")
    elif len(payload) != expected.size:
        raise _mismatch(expected.name, origin, "size", f"{expected.size} B", f"{len(payload)} B")


def fetch(spec: DatasetSpec, dest: str | Path, sources: list[str] | None = None) -> Path:
    """Make `dest` hold every file of `spec`, decompressed and verified. Returns `dest`.

    Files already present and verified are kept. A source that is missing a file, unreachable or
    serving a corrupt copy is skipped; if no source works, the error lists each attempt.
    """
    dest = Path(dest)
    sources = default_sources(spec) if sources is None else sources
    for f in spec.files:
        target = dest / f.name
        if target.is_file():
            try:
                verify(target.read_bytes(), f, str(target))
                continue
            except ChecksumError as err:
                log.warning("%s; fetching it again", err)
        attempts = []
        for source in sources:
            try:
                payload = verify_download(_read_from(source, f), f, source)
            except ChecksumError as err:
                # A corrupt or wrong copy is worth a warning even when a later source works.
                log.warning("%s; trying the next source", err)
                attempts.append(f"  - {source}: {err}")
                continue
            except (OSError, EOFError, zlib.error, urllib.error.URLError) as err:
                log.debug("%s: %s not available from %s: %s", spec.name, f.name, source, err)
                attempts.append(f"  - {source}: {err}")
                continue
            with atomic_path(target) as tmp:
                tmp.write_bytes(payload)
            log.info("%s: verified %s from %s", spec.name, f.name, source)
            break
        else:
            raise DataUnavailableError(
                f"could not obtain a verified copy of {spec.name}/{f.name}. Tried:\n"
                + "\n".join(attempts) + "\n" + _how_to_get(spec)
            )
    return dest
