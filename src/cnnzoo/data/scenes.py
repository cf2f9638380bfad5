"""Segmentation data: image/mask pairs, offline by default.

- `scenes` (default): canvases generated from the real images of `data.source`. Each holds 1 to
  `max_items` items at seeded random positions; an item's pixels are those brighter than
  `threshold` (Fashion-MNIST's and MNIST's backgrounds are black), labelled class + 1 (0 =
  background); later items occlude earlier ones. Items are drawn class by class in turn, so every
  split holds every class equally often (stratified). Train and validation scenes come from
  disjoint parts of the source's training images, test scenes from its test images.
- `folder`: the user's own pairs, `<path>/images/<stem>.<png|jpg>` and `<path>/masks/<stem>.png`
  (a class index per pixel, 0 = background), split seeded into train / val / test.
- `tfds:oxford_iiit_pet` (online, tensorflow-datasets installed): pet / background / border.

Output folder: `train.npz val.npz test.npz` (x (N, S, S, C) uint8, y (N, S, S) uint8; generated
scenes also `boxes` (N, max_items, 6), see `visible_boxes`) and `meta.json` (class names, index
0 = background).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cnnzoo.config import DataConfig, SegmentDataConfig
from cnnzoo.data.images import read_image
from cnnzoo.data.prepare import interleave
from cnnzoo.data.sources import IMAGE_SUFFIXES, load_source
from cnnzoo.files import arrays_digest, atomic_path, write_json, write_npz

log = logging.getLogger(__name__)
BACKGROUND = "background"
Split = tuple[np.ndarray, ...]  # images, masks (and, for generated scenes, boxes)


def item_masks(items: np.ndarray, threshold: int) -> np.ndarray:
    """(N, h, w, C) uint8 items -> (N, h, w) bool: pixels brighter than `threshold` in any
    channel."""
    return items.max(axis=-1) > threshold


def visible_boxes(instances: np.ndarray, pasted: np.ndarray, classes: np.ndarray,
                  slots: int) -> np.ndarray:
    """(slots, 6) float32 rows (class, x0, y0, x1, y1, visible share) of one scene: each item's
    box around its pixels still visible (x1, y1 exclusive) and the share of its pasted pixels
    they are; class -1 pads unused rows and marks items hidden completely."""
    boxes = np.full((slots, 6), -1.0, np.float32)
    for j in range(len(classes)):
        rows, cols = np.nonzero(instances == j + 1)
        if len(rows):
            boxes[j] = (classes[j], cols.min(), rows.min(), cols.max() + 1, rows.max() + 1,
                        len(rows) / max(int(pasted[j]), 1))
    return boxes


def compose(items: np.ndarray, labels: np.ndarray, n_scenes: int, cfg: SegmentDataConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n_scenes` canvases from (N, h, w, C) `items` with class `labels`, used in order
    (cycling when they run out): images, masks and every pasted item's visible box
    (`visible_boxes`; the detection pipeline's ground truth)."""
    n, h, w, c = items.shape
    size = cfg.canvas
    if h > size or w > size:
        raise ValueError(f"segment.canvas={size} is smaller than the source's items ({h}×{w})")
    masks = item_masks(items, cfg.threshold)
    x = np.zeros((n_scenes, size, size, c), np.uint8)
    y = np.zeros((n_scenes, size, size), np.uint8)
    boxes = np.empty((n_scenes, cfg.max_items, 6), np.float32)
    counts = rng.integers(cfg.min_items, cfg.max_items + 1, n_scenes)
    k = 0
    for s in range(n_scenes):
        instances = np.zeros((size, size), np.uint8)  # which item a pixel shows (0 = none)
        classes, pasted = np.empty(counts[s], np.int64), np.empty(counts[s], np.int64)
        for j in range(counts[s]):  # later items are pasted over earlier ones
            i = k % n
            k += 1
            top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
            m = masks[i]
            x[s, top:top + h, left:left + w][m] = items[i][m]
            y[s, top:top + h, left:left + w][m] = labels[i] + 1
            instances[top:top + h, left:left + w][m] = j + 1
            classes[j], pasted[j] = labels[i], m.sum()
        boxes[s] = visible_boxes(instances, pasted, classes, cfg.max_items)
    return x, y, boxes


def _stratified(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every class in turn, each in a seeded random order."""
    return interleave([rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)])


def generate_scenes(data: DataConfig, cfg: SegmentDataConfig, seed: int,
                    cache_dir: str | Path) -> tuple[dict[str, Split], list[str]]:
    raw = load_source(data, cache_dir)
    if raw.x_test is None:
        raise ValueError(f"segment.data.source 'scenes' needs a data.source with a test split; "
                         f"{data.source!r} has none: set pipelines.segment: [] and "
                         "pipelines.detect: [], or segment.data.source: folder (images/ + masks/)")
    rng = np.random.default_rng(seed)
    order = _stratified(raw.y_train, rng)
    n_val = max(1, round(len(order) * data.val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    test_idx = _stratified(raw.y_test, rng)
    splits = {}
    for i, (name, (x, y, idx)) in enumerate({"train": (raw.x_train, raw.y_train, train_idx),
                                             "val": (raw.x_train, raw.y_train, val_idx),
                                             "test": (raw.x_test, raw.y_test, test_idx)}.items()):
        # Each split composes from its own stream, so the validation and test scenes stay the
        # same when train_scenes changes (results of two budgets compare on the same scenes).
        own = np.random.default_rng([seed, i])
        splits[name] = compose(x[idx], y[idx], getattr(cfg, f"{name}_scenes"), cfg, own)
    return splits, [BACKGROUND, *raw.class_names]


# -- folder ------------------------------------------------------------------------------------

def _read_pair(image: Path, mask: Path, size: int, channels: int, n_classes: int) -> Split:
    from PIL import Image

    try:
        pixels = read_image(image, channels)
        shape = pixels.size
        with Image.open(mask) as m:
            m.load()
            if m.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"mode {m.mode} (expected a single-channel PNG of class indices)")
            labels = np.asarray(m)
            mask_shape = m.size
    except (OSError, ValueError) as err:
        raise ValueError(f"{image.name} / {mask}: unreadable: {err}") from None
    if mask_shape != shape:
        raise ValueError(f"{mask}: mask is {mask_shape[0]}×{mask_shape[1]} but its image "
                         f"{image} is {shape[0]}×{shape[1]}")
    if labels.max() >= n_classes:
        raise ValueError(f"{mask}: class index {int(labels.max())} is outside the declared "
                         f"classes 0..{n_classes - 1} (segment.classes)")
    x = np.asarray(pixels.resize((size, size), Image.BILINEAR), np.uint8)
    y = np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((size, size), Image.NEAREST))
    return (x[..., None] if channels == 1 else x), y


def load_folder_pairs(cfg: SegmentDataConfig, seed: int, val_fraction: float,
                      test_fraction: float) -> tuple[dict[str, Split], list[str]]:
    root = Path(cfg.path)
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise FileNotFoundError(f"segment.path {root} needs images/ and masks/ sub-folders "
                                "(masks/<stem>.png: one class index per pixel)")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(images) < 3:
        raise ValueError(f"{images_dir}: {len(images)} image(s); need at least 3 (train, "
                         "validation and test)")
    pairs = []
    for image in images:
        mask = masks_dir / f"{image.stem}.png"
        if not mask.is_file():
            raise FileNotFoundError(f"{image}: no mask {mask}")
        pairs.append(_read_pair(image, mask, cfg.canvas, cfg.channels, len(cfg.classes)))
    x, y = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, round(len(x) * test_fraction))
    n_val = max(1, round(len(x) * val_fraction))
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
             "train": order[n_test + n_val:]}
    return {k: (x[v], y[v]) for k, v in parts.items()}, list(cfg.classes)


# -- TFDS --------------------------------------------------------------------------------------

PET_CLASSES = [BACKGROUND, "pet", "border"]
_PET_TRIMAP = np.array([0, 1, 0, 2], np.uint8)  # trimap 1 = pet, 2 = background, 3 = border


def load_pets(cfg: SegmentDataConfig, cache_dir: Path, seed: int,
              val_fraction: float) -> tuple[dict[str, Split], list[str]]:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise FileNotFoundError("segment.source tfds:oxford_iiit_pet needs tensorflow-datasets: "
                                "pip install 'cnnzoo[tfds]' (and network access)") from None
    import tensorflow as tf

    def convert(ds):
        xs, ys = [], []
        for ex in tfds.as_numpy(ds):
            img = tf.image.resize(ex["image"], (cfg.canvas, cfg.canvas), antialias=True)
            mask = tf.image.resize(ex["segmentation_mask"], (cfg.canvas, cfg.canvas),
                                   method="nearest")
            xs.append(np.clip(np.round(img.numpy()), 0, 255).astype(np.uint8))
            ys.append(_PET_TRIMAP[mask.numpy()[..., 0]])
        x = np.stack(xs)
        return (np.round(x.astype(np.float32) @ [0.299, 0.587, 0.114])[..., None].astype(np.uint8)
                if cfg.channels == 1 else x), np.stack(ys)

    train = convert(tfds.load("oxford_iiit_pet", split="train", data_dir=str(cache_dir)))
    test = convert(tfds.load("oxford_iiit_pet", split="test", data_dir=str(cache_dir)))
    order = np.random.default_rng(seed).permutation(len(train[0]))
    n_val = max(1, round(len(order) * val_fraction))
    return {"train": (train[0][order[n_val:]], train[1][order[n_val:]]),
            "val": (train[0][order[:n_val]], train[1][order[:n_val]]), "test": test}, PET_CLASSES


def prepare_segmentation(data: DataConfig, cfg: SegmentDataConfig, seed: int,
                         out_dir: str | Path, cache_dir: str | Path) -> dict:
    """Build the splits of `cfg.source` and write them atomically to `out_dir`. Returns meta."""
    if cfg.source == "scenes":
        splits, classes = generate_scenes(data, cfg, seed, cache_dir)
    elif cfg.source == "folder":
        splits, classes = load_folder_pairs(cfg, seed, data.val_fraction, data.test_fraction)
    else:
        splits, classes = load_pets(cfg, Path(cache_dir) / "tfds", seed, data.val_fraction)
    counts = {name: int(len(split[0])) for name, split in splits.items()}
    pixels = np.bincount(np.concatenate([split[1].ravel() for split in splits.values()]),
                         minlength=len(classes))
    meta = {"source": cfg.source, "digest": arrays_digest(splits),
            # generated scenes are cut from data.source's images
            "from": data.source if cfg.source == "scenes" else cfg.path or cfg.source,
            "classes": classes, "image_shape": list(splits["train"][0].shape[1:]),
            "counts": counts, "pixel_share": {c: round(float(p) / pixels.sum(), 4)
                            for c, p in zip(classes, pixels, strict=True)}}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, split in splits.items():
            arrays = dict(zip(("x", "y", "boxes"), split, strict=False))  # boxes: scenes only
            write_npz(tmp / f"{name}.npz", **arrays)
        write_json(tmp / "meta.json", meta)
    log.info("segmentation data (%s) in %s: %s scenes of %s, %d classes with background",
             cfg.source, out_dir, counts, meta["image_shape"], len(classes))
    return meta
