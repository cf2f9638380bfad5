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
    # (H, W) before `fit` when the images were fitted on loading and all shared one size (a
    # folder): what `cnnzoo predict` brings new images to before padding.
    source_size: tuple[int, int] | None = None


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

# PIL modes of single-channel images (after cnnzoo.data.images.to_8bit: 16-bit and float grey).
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def folder_channels(files: list[Path]) -> int:
    """`data.channels: null` for a folder: 1 when every image is grey, else 3 (read from the
    headers, without decoding)."""
    from PIL import Image

    for f in files:
        try:
            with Image.open(f) as img:
                if img.mode not in GREY_MODES:
                    return 3
        except Exception:  # noqa: BLE001 — unreadable files are skipped, with the reason, later
            continue
    return 1


def _decode(path: Path, size: int, channels: int, fit: str,
            max_pixels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One image as size x size x channels uint8: `fit: resize` rescales it; `fit: pad` keeps its
    pixels, shrinking (aspect kept) only an image larger than size, and zero-pads it centred."""
    from PIL import Image

    img = read_image(path, channels, max_pixels)
    original = (img.height, img.width)
    if fit == "resize":
        img = img.resize((size, size), Image.BILINEAR)
    elif max(img.size) > size:
        scale = size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[..., None] if arr.ndim == 2 else arr
    if arr.shape[:2] != (size, size):
        from cnnzoo.data.prepare import pad_to

        arr = pad_to(arr[None], size)[0]
    return arr, original


def load_folder(path: str | Path, size: int, channels: int | None, fit: str = "pad",
                max_pixels: int = MAX_PIXELS) -> RawDataset:
    """One sub-folder per class; files that are not readable images are skipped with a reason.
    `channels` None keeps the folder's own (grey only if every image is); `fit` as in
    `_decode`."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"data.path {root} is not a folder (expected one sub-folder "
                                "of images per class)")
    images, labels, names, skipped, sizes = [], [], [], [], set()
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    files = {d: sorted(p for p in d.rglob("*") if p.is_file()) for d in class_dirs}
    if channels is None:
        channels = folder_channels([f for d in class_dirs for f in files[d]
                                    if f.suffix.lower() in IMAGE_SUFFIXES])
    for class_dir in class_dirs:
        decoded = []
        for f in files[class_dir]:
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((str(f), f"not an image file ({f.suffix or 'no extension'})"))
                continue
            try:
                arr, original = _decode(f, size, channels, fit, max_pixels)
                decoded.append(arr)
                sizes.add(original)
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
    common = next(iter(sizes)) if len(sizes) == 1 and fit == "pad" else None
    return RawDataset(np.stack(images), np.array(labels, np.int32), None, None, tuple(names),
                      skipped, source_size=common if common and max(common) <= size else None)


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
        return load_folder(cfg.path, cfg.image_size, cfg.channels, cfg.fit, cfg.max_pixels)
    return load_tfds(cfg.source.removeprefix("tfds:"), cache_dir / "tfds")
