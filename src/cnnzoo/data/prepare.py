"""Turn a raw labelled dataset into the pipeline's splits.

Transfer learning without internet (Yosinski et al. 2014, "How transferable are features in deep
neural networks?"): the classes are split into a source task A, learnt from many images in
`pretrain`, and a target task B, learnt from `labels_per_class` images per class in `transfer` and
`finetune`. Labels are renumbered 0..k-1 within each task.

Output folder: `a_train.npz a_val.npz b_train.npz b_val.npz b_test.npz meta.json`, each npz with
`x` (N, H, W, C) uint8 and `y` (N,) int32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnzoo.config import DataConfig
from cnnzoo.data.fetch import FASHION_MNIST, DatasetSpec, fetch
from cnnzoo.data.idx import parse_idx
from cnnzoo.files import atomic_path, write_json

log = logging.getLogger(__name__)

SPLITS = ("a_train", "a_val", "b_train", "b_val", "b_test")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class RawDataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


def load_idx_dataset(spec: DatasetSpec, folder: Path, class_names: tuple[str, ...]) -> RawDataset:
    """Read the four standard MNIST-style IDX files from `folder`."""
    def read(name: str) -> np.ndarray:
        return parse_idx((folder / name).read_bytes(), name)

    names = [f.name for f in spec.files]
    x_train, y_train, x_test, y_test = (read(n) for n in names)
    return RawDataset(x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32),
                      class_names)


def load_source(cfg: DataConfig, cache_dir: Path) -> RawDataset:
    if cfg.source == "fashion_mnist":
        folder = fetch(FASHION_MNIST, cache_dir / FASHION_MNIST.name)
        return load_idx_dataset(FASHION_MNIST, folder, FASHION_MNIST_CLASSES)
    raise ValueError(f"unsupported data.source {cfg.source!r}")  # config already restricts this


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (N, h, w[, c]) images to size×size (LeNet-5 pads 28→32 so strokes reach C3's RFs)."""
    if x.ndim == 3:
        x = x[..., None]
    h, w = x.shape[1:3]
    if h > size or w > size:
        raise ValueError(f"data.image_size={size} is smaller than the images ({h}×{w})")
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(x, ((0, 0), (top, size - h - top), (left, size - w - left), (0, 0)))


def _per_class(y: np.ndarray, classes: list[int], rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Shuffled indices of each class, in a seeded order."""
    return {c: rng.permutation(np.flatnonzero(y == c)) for c in classes}


def _take(x: np.ndarray, y: np.ndarray, idx: list[np.ndarray], classes: list[int], rng):
    idx = rng.permutation(np.concatenate(idx)) if idx else np.array([], dtype=np.int64)
    remap = np.full(max(classes) + 1, -1, dtype=np.int32)
    remap[classes] = np.arange(len(classes), dtype=np.int32)
    return x[idx], remap[y[idx]]


def make_splits(raw: RawDataset, cfg: DataConfig, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded splits for tasks A and B (see module docstring)."""
    n_classes = len(raw.class_names)
    for c in (*cfg.task_a_classes, *cfg.task_b_classes):
        if not 0 <= c < n_classes:
            raise ValueError(f"class {c} in data.task_*_classes is outside 0..{n_classes - 1}")
    rng = np.random.default_rng(seed)
    a, b = list(cfg.task_a_classes), list(cfg.task_b_classes)
    x_train, x_test = pad_to(raw.x_train, cfg.image_size), pad_to(raw.x_test, cfg.image_size)

    a_idx = _per_class(raw.y_train, a, rng)
    a_val, a_train = [], []
    for idx in a_idx.values():
        n_val = max(1, round(len(idx) * cfg.val_fraction))
        a_val.append(idx[:n_val])
        rest = idx[n_val:]
        a_train.append(rest[: cfg.max_train_a // len(a)] if cfg.max_train_a else rest)

    b_idx = _per_class(raw.y_train, b, rng)
    need = cfg.labels_per_class + cfg.val_per_class
    short = {c: len(i) for c, i in b_idx.items() if len(i) < need}
    if short:
        raise ValueError(f"task B classes {short} have fewer than labels_per_class + "
                         f"val_per_class = {need} training images")
    b_train = [i[: cfg.labels_per_class] for i in b_idx.values()]
    b_val = [i[cfg.labels_per_class: need] for i in b_idx.values()]
    test_idx = _per_class(raw.y_test, b, rng)
    b_test = [i[: cfg.max_test // len(b)] if cfg.max_test else i for i in test_idx.values()]

    return {
        "a_train": _take(x_train, raw.y_train, a_train, a, rng),
        "a_val": _take(x_train, raw.y_train, a_val, a, rng),
        "b_train": _take(x_train, raw.y_train, b_train, b, rng),
        "b_val": _take(x_train, raw.y_train, b_val, b, rng),
        "b_test": _take(x_test, raw.y_test, b_test, b, rng),
    }


def prepare(cfg: DataConfig, seed: int, out_dir: str | Path, cache_dir: str | Path) -> dict:
    """Fetch the source, build the splits and write them atomically to `out_dir`. Returns meta."""
    raw = load_source(cfg, Path(cache_dir))
    splits = make_splits(raw, cfg, seed)
    meta = {
        "source": cfg.source,
        "image_shape": list(splits["a_train"][0].shape[1:]),
        "task_a": {"classes": list(cfg.task_a_classes),
                   "names": [raw.class_names[c] for c in cfg.task_a_classes]},
        "task_b": {"classes": list(cfg.task_b_classes),
                   "names": [raw.class_names[c] for c in cfg.task_b_classes]},
        "counts": {name: int(len(y)) for name, (_, y) in splits.items()},
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, (x, y) in splits.items():
            np.savez_compressed(tmp / f"{name}.npz", x=x, y=y)
        write_json(tmp / "meta.json", meta)
    log.info("prepared %s into %s: %s", cfg.source, out_dir, meta["counts"])
    return meta
