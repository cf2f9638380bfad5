"""Prepared splits and augmented shards -> tf.data pipelines (parallel map, cache, shuffle,
prefetch). Labels are one-hot when `num_classes` is given, so mixup/CutMix's soft labels and
plain ones share one loss."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from cnnzoo.files import read_json

AUTOTUNE = tf.data.AUTOTUNE
Mixer = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


class MissingDataError(FileNotFoundError):
    """A prepared split is absent: the download stage has not run."""


def load_split(prepared: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    path = Path(prepared) / f"{name}.npz"
    if not path.is_file():
        raise MissingDataError(f"{path} not found: run `dvc repro download` (or `make run`) first")
    with np.load(path) as f:
        return f["x"], f["y"]


def load_meta(prepared: str | Path) -> dict:
    path = Path(prepared) / "meta.json"
    if not path.is_file():
        raise MissingDataError(f"{path} not found: run `dvc repro download` (or `make run`) first")
    return read_json(path)


def to_float(x: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1] inside a tf.data pipeline: serving_input.to_unit, the
    one scaling rule, as a TensorFlow op."""
    return tf.cast(x, tf.float32) / 255.0


def _encode(num_classes: int | None):
    def fn(x, y):
        y = tf.one_hot(tf.cast(y, tf.int32), num_classes) if num_classes else y
        return (to_float(x) if x.dtype == tf.uint8 else x), y  # features are float already
    return fn


def _mix(ds: tf.data.Dataset, seed: int, mixer: Mixer | None) -> tf.data.Dataset:
    """Apply `mixer` to each batch with a stateless seed from a seeded stream (reproducible)."""
    if mixer is not None:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(lambda b, s: mixer(b[0], b[1], s),
                                                num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def make_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, num_classes: int | None = None,
                 training: bool = False, seed: int = 0, mixer: Mixer | None = None) -> tf.data.Dataset:
    """In-memory split. Training pipelines reshuffle every epoch (Keras ignores `shuffle=True`
    for tf.data input) and apply `mixer` per batch."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.map(_encode(num_classes), num_parallel_calls=AUTOTUNE).cache()
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return _mix(ds.batch(batch_size), seed, mixer if training else None)


def load_copies(shards: list[Path], image_shape: tuple[int, ...],
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The augmented copies stored as TFRecord shards, in memory: uint8 images of shape
    (copies, N, *image_shape) and the labels (N,), keeping the first `limit` records of each.

    Training gathers batches from memory instead of parsing records while it trains: on a
    2-core CPU the parse-and-shuffle pipeline competed with the model for the cores and cost
    ~40% of the images per second.
    """
    from cnnzoo.data.augment import parse_records

    images, labels = [], None
    for shard in shards:
        ds = tf.data.TFRecordDataset(str(shard))
        ds = ds.take(limit) if limit else ds
        x, y = zip(*(parse_records(r, image_shape) for r in ds.batch(4096)), strict=True)
        images.append(np.concatenate([t.numpy() for t in x]))
        y = np.concatenate([t.numpy() for t in y]).astype(np.int32)
        if labels is not None and not np.array_equal(labels, y):
            raise ValueError(f"{shard}: its labels differ from the first shard's; rerun augment")
        labels = y
    return np.stack(images), labels


def epoch_steps(n: int, batch_size: int) -> int:
    """Training steps per epoch of `n` images: ceil(n / batch_size), rounded to a multiple of 8
    from 200 steps on (an epoch of the endless stream then holds at most 2% more or fewer
    images), so that training runs whole calls of 8 or 16 steps (train.execution_steps)."""
    steps = math.ceil(n / batch_size)
    return 8 * round(steps / 8) if steps >= 200 else steps


def copies_dataset(copies: np.ndarray, y: np.ndarray, *, batch_size: int, num_classes: int,
                   seed: int, mixer: Mixer | None = None) -> tuple[tf.data.Dataset, int]:
    """Endless stream over in-memory copies (C, N, ...): epoch e is copy e mod C in a fresh
    seeded order, gathered a whole batch at a time. Copies may be images (uint8) or
    precomputed features (float). Returns the dataset and steps per epoch (`epoch_steps`)."""
    n_copies, n = copies.shape[:2]
    data, labels = tf.constant(copies), tf.constant(y)
    encode = _encode(num_classes)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), seed=tf.stack([tf.constant(seed, tf.int64), e]))
        copy = data[e % n_copies]
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(
            lambda i: encode(tf.gather(copy, i), tf.gather(labels, i)))

    # Endless, and said so: `loop.fit` skips the epochs a resumed run restored.
    ds = tf.data.Dataset.counter().flat_map(epoch).apply(
        tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    return _mix(ds, seed, mixer), epoch_steps(n, batch_size)
