"""Dataset sources behind one interface: `load_source(cfg, cache_dir) -> RawDataset`.

- `fashion_mnist`, `mnist`: the four IDX files (fetch.py finds and verifies them);
- `cifar10`, `cifar100`: the *binary* tarballs — fixed-size records, never unpickled — extracted
  with Python's "data" filter after refusing absolute paths, `..` and links explicitly;
- `folder`: one sub-folder per class of JPEG/PNG/BMP/GIF images, resized to `image_size`;
  unreadable or non-image files are skipped and reported, not fatal;
- `tfds:<name>`: TensorFlow Datasets, when installed (`pip install 'cnnzoo[tfds]'`) and online.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnzoo.config import MAX_PIXELS, DataConfig
from cnnzoo.data.fetch import CIFAR10, CIFAR100, FASHION_MNIST, MNIST, DatasetSpec, fetch
from cnnzoo.data.idx import parse_idx
from cnnzoo.data.images import ImageError, read_image
from cnnzoo.files import atomic_path

log = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


@dataclass
class RawDataset:
    """Images (N, H, W, C) uint8 with int32 labels; `x_test` is None when the source has no
    test split (it is then carved out, stratified, by `prepare`)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: tuple[str, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


class UnsafeArchiveError(ValueError):
    """A tar member would escape the extraction folder or is a link."""


# -- IDX ----------------------------------------------------------------------------------------

def load_idx(spec: DatasetSpec, folder: Path, class_names: tuple[str, ...]) -> RawDataset:
    """The four standard MNIST-style IDX files, in the order of `spec.files`."""
    x_train, y_train, x_test, y_test = (parse_idx((folder / f.name).read_bytes(), f.name)
                                        for f in spec.files)
    return RawDataset(x_train[..., None], y_train.astype(np.int32), x_test[..., None],
                      y_test.astype(np.int32), class_names)


# -- CIFAR binary ------------------------------------------------------------------------------

def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a tarball into `dest`, refusing absolute paths, `..` components and links before
    anything is written (then Python's "data" filter as a second line of defence)."""
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if m.name.startswith(("/", "\\")) or Path(m.name).is_absolute() or ".." in parts:
                raise UnsafeArchiveError(f"{archive.name}: refusing member {m.name!r} "
                                         "(absolute path or '..')")
            if m.issym() or m.islnk():
                raise UnsafeArchiveError(f"{archive.name}: refusing link member {m.name!r}")
        with atomic_path(dest) as tmp:
            tmp.mkdir()
            tar.extractall(tmp, filter="data")
    return dest


def read_cifar_records(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size records: `label_bytes` label bytes (CIFAR-100: coarse, fine) then 3×32×32
    channel-major pixels. The last label byte is the class."""
    size = label_bytes + 3072
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if raw.size % size:
        raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {size}-byte records")
    records = raw.reshape(-1, size)
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, label_bytes - 1].astype(np.int32)


_CIFAR = {  # spec, folder in the tarball, train files, test file, label bytes, names file
    "cifar10": (CIFAR10, "cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)],
                "test_batch.bin", 1, "batches.meta.txt"),
    "cifar100": (CIFAR100, "cifar-100-binary", ["train.bin"], "test.bin", 2,
                 "fine_label_names.txt"),
}


def load_cifar(name: str, cache_dir: Path) -> RawDataset:
    spec, folder, train_files, test_file, label_bytes, names_file = _CIFAR[name]
    archive = fetch(spec, cache_dir / name) / spec.files[0].name
    root = cache_dir / name / "extracted"
    if not (root / folder / test_file).is_file():
        safe_extract(archive, root)
    root = root / folder
    parts = [read_cifar_records(root / f, label_bytes) for f in train_files]
    x_test, y_test = read_cifar_records(root / test_file, label_bytes)
    names = tuple(n for n in (root / names_file).read_text().split() if n)
    return RawDataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                      x_test, y_test, names)


# -- folder ------------------------------------------------------------------------------------

def _decode(path: Path, size: int, channels: int, max_pixels: int) -> np.ndarray:
    from PIL import Image

    img = read_image(path, channels, max_pixels).resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr


def load_folder(path: str | Path, size: int, channels: int,
                max_pixels: int = MAX_PIXELS) -> RawDataset:
    """One sub-folder per class; files that are not readable images are skipped with a reason."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"data.path {root} is not a folder (expected one sub-folder "
                                "of images per class)")
    images, labels, names, skipped = [], [], [], []
    for class_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        decoded = []
        for f in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((str(f), f"not an image file ({f.suffix or 'no extension'})"))
                continue
            try:
                decoded.append(_decode(f, size, channels, max_pixels))
            except ImageError as err:
                skipped.append((str(f), str(err).removeprefix(f"{f}: ")))
        if not decoded:
            skipped.append((str(class_dir), "class folder has no usable images; class dropped"))
            continue
        images += decoded
        labels += [len(names)] * len(decoded)
        names.append(class_dir.name)
    for f, why in skipped:
        log.warning("skipped %s: %s", f, why)
    if len(names) < 2:
        raise ValueError(f"{root}: need at least 2 class folders with usable images, found "
                         f"{len(names)} ({', '.join(names) or 'none'}); "
                         f"{len(skipped)} file(s) skipped")
    return RawDataset(np.stack(images), np.array(labels, np.int32), None, None, tuple(names),
                      skipped)


# -- TFDS --------------------------------------------------------------------------------------

def load_tfds(name: str, data_dir: Path) -> RawDataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise FileNotFoundError(f"data.source tfds:{name} needs tensorflow-datasets: "
                                "pip install 'cnnzoo[tfds]' (and network access)") from None
    splits, info = tfds.load(name, split=None, as_supervised=True, batch_size=-1,
                             data_dir=str(data_dir), with_info=True)
    train = tfds.as_numpy(splits["train"])
    test = tfds.as_numpy(splits["test"]) if "test" in splits else (None, None)
    return RawDataset(train[0], train[1].astype(np.int32), test[0],
                      None if test[1] is None else test[1].astype(np.int32),
                      tuple(info.features["label"].names))


def load_source(cfg: DataConfig, cache_dir: str | Path) -> RawDataset:
    cache_dir = Path(cache_dir)
    if cfg.source == "fashion_mnist":
        return load_idx(FASHION_MNIST, fetch(FASHION_MNIST, cache_dir / "fashion_mnist"),
                        FASHION_MNIST_CLASSES)
    if cfg.source == "mnist":
        return load_idx(MNIST, fetch(MNIST, cache_dir / "mnist"), tuple(str(d) for d in range(10)))
    if cfg.source in _CIFAR:
        return load_cifar(cfg.source, cache_dir)
    if cfg.source == "folder":
        return load_folder(cfg.path, cfg.image_size, cfg.channels or 3, cfg.max_pixels)
    return load_tfds(cfg.source.removeprefix("tfds:"), cache_dir / "tfds")
