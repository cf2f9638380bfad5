"""Turn a raw labelled dataset into the pipeline's splits.

Transfer learning without internet (Yosinski et al. 2014, "How transferable are features in deep
neural networks?"): the classes are split into a source task A, learnt from many images in
`pretrain`, and a target task B, learnt from `labels_per_class` images per class in `transfer` and
`finetune`. B's images are drawn first and never reused for A (unless B takes every image of a
shared class, as a full-data classifier does). Labels are renumbered 0..k-1 within each task.
Every split is stratified and seeded.

`b_train` is a pool of `b_pool_per_class` images per class in class-interleaved order (one image
of each class in turn), so its first n x k images hold exactly n per class and smaller label
budgets are nested in larger ones: a label sweep reuses one download.

Output folder: `a_train.npz a_val.npz b_train.npz b_val.npz b_test.npz meta.json skipped.txt`,
each npz with `x` (N, H, W, C) uint8 and `y` (N,) int32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cnnzoo.config import DataConfig
from cnnzoo.data.sources import RawDataset, load_source
from cnnzoo.files import arrays_digest, atomic_path, write_json, write_npz

log = logging.getLogger(__name__)

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as PIL's "L" mode


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (N, h, w[, c]) images to size×size (LeNet-5 pads 28→32 so strokes reach C3's RFs)."""
    if x.ndim == 3:
        x = x[..., None]
    h, w = x.shape[1:3]
    if h > size or w > size:
        raise ValueError(f"data.image_size={size} is smaller than the images ({h}×{w}); "
                         "set data.fit: resize")
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(x, ((0, 0), (top, size - h - top), (left, size - w - left), (0, 0)))


def fit_images(x: np.ndarray, size: int, channels: int | None, fit: str) -> np.ndarray:
    """Bring (N, H, W, C) uint8 images to size×size×channels."""
    if channels == 1 and x.shape[-1] == 3:
        x = np.round(x.astype(np.float32) @ _LUMA)[..., None].astype(np.uint8)
    elif channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if x.shape[1:3] == (size, size):
        return x
    if fit == "pad":
        return pad_to(x, size)
    import tensorflow as tf

    resized = tf.image.resize(x, (size, size), method="bilinear", antialias=True)
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


def resolve_classes(selector, n_classes: int, key: str) -> list[int]:
    if selector == "all":
        classes = list(range(n_classes))
    elif selector in ("even", "odd"):
        classes = list(range(0 if selector == "even" else 1, n_classes, 2))
    else:
        classes = list(selector)
        bad = [c for c in classes if not 0 <= c < n_classes]
        if bad:
            raise ValueError(f"data.{key}: classes {bad} are outside 0..{n_classes - 1} "
                             f"(the dataset has {n_classes} classes)")
    if len(classes) < 2:
        raise ValueError(f"data.{key}={selector!r} selects {len(classes)} class(es) of "
                         f"{n_classes}; a task needs at least 2")
    return classes


def interleave(per_class: list[np.ndarray]) -> np.ndarray:
    """Round-robin order over the classes' index lists: c0[0], c1[0], ..., c0[1], c1[1], ...
    (a class that runs out drops out), so every prefix of n x k holds n per class."""
    longest = max(len(i) for i in per_class)
    rows = [[i[j] for i in per_class if j < len(i)] for j in range(longest)]
    return np.array([v for row in rows for v in row], dtype=np.int64)


def _take(x, y, idx: list[np.ndarray], classes: list[int], rng):
    """Gather the indices (shuffled when `rng` is given) and renumber labels to 0..k-1."""
    idx = np.concatenate(idx) if idx else np.array([], dtype=np.int64)
    idx = rng.permutation(idx) if rng is not None else idx
    remap = np.full(max(classes) + 1, -1, dtype=np.int32)
    remap[classes] = np.arange(len(classes), dtype=np.int32)
    return x[idx], remap[y[idx]]


def split_test(raw: RawDataset, fraction: float, rng: np.random.Generator) -> RawDataset:
    """Carve a stratified test split out of a source that has none (image folders)."""
    test = []
    for c in range(len(raw.class_names)):
        idx = rng.permutation(np.flatnonzero(raw.y_train == c))
        test.append(idx[: max(1, round(len(idx) * fraction))])
    test = np.concatenate(test)
    train = np.setdiff1d(np.arange(len(raw.y_train)), test)
    return RawDataset(raw.x_train[train], raw.y_train[train], raw.x_train[test],
                      raw.y_train[test], raw.class_names, raw.skipped)


def make_splits(raw: RawDataset, cfg: DataConfig, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded splits for tasks A and B (see module docstring)."""
    n_classes = len(raw.class_names)
    a = resolve_classes(cfg.task_a_classes, n_classes, "task_a_classes")
    b = resolve_classes(cfg.task_b_classes, n_classes, "task_b_classes")
    rng = np.random.default_rng(seed)
    if raw.x_test is None:
        raw = split_test(raw, cfg.test_fraction, rng)
    x_train = fit_images(raw.x_train, cfg.image_size, cfg.channels, cfg.fit)
    x_test = fit_images(raw.x_test, cfg.image_size, cfg.channels, cfg.fit)
    order = {c: rng.permutation(np.flatnonzero(raw.y_train == c)) for c in sorted(set(a) | set(b))}

    pool = cfg.b_pool_per_class
    need = cfg.val_per_class + max(pool, 1)
    short = {raw.class_names[c]: len(order[c]) for c in b if len(order[c]) < need}
    if short:
        raise ValueError(f"task B classes {short} have fewer training images than "
                         f"val_per_class + b_pool_per_class = {need}; lower them or add images")
    b_val = [order[c][: cfg.val_per_class] for c in b]
    b_pool = [order[c][cfg.val_per_class: cfg.val_per_class + pool if pool else None] for c in b]
    used_by_b = {c: cfg.val_per_class + len(p) for c, p in zip(b, b_pool, strict=True)}

    a_val, a_train = [], []
    for c in a:
        idx = order[c][used_by_b.get(c, 0):]
        if len(idx) < 2 and c in used_by_b:
            # B's pool took the whole class (full-data classifier): A shares B's pool images.
            log.warning("task A class %r has no images left after task B's pool; it reuses "
                        "them (transfer to a class seen in pretraining is not a fair test)",
                        raw.class_names[c])
            idx = order[c][cfg.val_per_class:]
        n_val = max(1, round(len(idx) * cfg.val_fraction))
        if len(idx) - n_val < 1:
            raise ValueError(f"task A class {raw.class_names[c]!r} has {len(idx)} image(s) left "
                             "for training and validation; it needs at least 2")
        a_val.append(idx[:n_val])
        rest = idx[n_val:]
        a_train.append(rest[: max(1, cfg.max_train_a // len(a))] if cfg.max_train_a else rest)

    test_idx = [rng.permutation(np.flatnonzero(raw.y_test == c)) for c in b]
    b_test = [i[: max(1, cfg.max_test // len(b))] if cfg.max_test else i for i in test_idx]
    if not all(len(i) for i in b_test):
        raise ValueError("the test split lacks images of some task B classes")

    return {
        "a_train": _take(x_train, raw.y_train, a_train, a, rng),
        "a_val": _take(x_train, raw.y_train, a_val, a, rng),
        "b_train": _take(x_train, raw.y_train, [interleave(b_pool)], b, None),
        "b_val": _take(x_train, raw.y_train, b_val, b, rng),
        "b_test": _take(x_test, raw.y_test, b_test, b, rng),
    }, (a, b)


def prepare(cfg: DataConfig, seed: int, out_dir: str | Path, cache_dir: str | Path) -> dict:
    """Load the source, build the splits and write them atomically to `out_dir`. Returns meta."""
    raw = load_source(cfg, Path(cache_dir))
    splits, (a, b) = make_splits(raw, cfg, seed)
    meta = {
        "source": cfg.source,
        # The splits' digest: every metrics file and registered model names its data by it.
        "digest": arrays_digest(splits),
        "path": cfg.path,
        "image_shape": list(splits["a_train"][0].shape[1:]),
        # Before `fit` (e.g. 28x28 padded to 32x32): how `cnnzoo predict` prepares new images.
        "source_image_shape": list(raw.source_size or raw.x_train.shape[1:3])
        + [int(splits["a_train"][0].shape[-1])],
        "task_a": {"classes": a, "names": [raw.class_names[c] for c in a]},
        "task_b": {"classes": b, "names": [raw.class_names[c] for c in b]},
        "counts": {name: int(len(y)) for name, (_, y) in splits.items()},
        "skipped": len(raw.skipped),
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, (x, y) in splits.items():
            write_npz(tmp / f"{name}.npz", x=x, y=y)
        write_json(tmp / "meta.json", meta)
        (tmp / "skipped.txt").write_text("".join(f"{f}\t{why}\n" for f, why in raw.skipped))
    log.info("prepared %s into %s: %s (%d file(s) skipped, see skipped.txt)", cfg.source, out_dir,
             meta["counts"], len(raw.skipped))
    return meta


def first_labels(x: np.ndarray, y: np.ndarray, per_class: int, num_classes: int):
    """The first `per_class` images of every class from an interleaved `b_train` pool (0 = all)."""
    if not per_class:
        return x, y
    n = per_class * num_classes
    counts = np.bincount(y[:n], minlength=num_classes)
    if len(y) < n or counts.min() < per_class:
        raise ValueError(f"data.labels_per_class={per_class}: the prepared task-B pool has "
                         f"{len(y)} images ({np.bincount(y, minlength=num_classes).min()} in its "
                         "smallest class); raise data.b_pool_per_class and rerun download")
    return x[:n], y[:n]
