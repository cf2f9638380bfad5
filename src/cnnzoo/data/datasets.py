"""Prepared splits -> tf.data pipelines (parallel map, cache, shuffle, prefetch)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnnzoo.files import read_json

AUTOTUNE = tf.data.AUTOTUNE


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
    """uint8 pixels -> float32 in [0, 1]; the models and the TFLite exports take this range."""
    return tf.cast(x, tf.float32) / 255.0


def make_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, training: bool = False,
                 seed: int = 0, augmenter: keras.Layer | None = None) -> tf.data.Dataset:
    """Batched (image, label) pipeline. Training pipelines shuffle every epoch (Keras ignores
    `shuffle=True` for tf.data input) and apply `augmenter` per batch, after the cache."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.map(lambda a, b: (to_float(a), b), num_parallel_calls=AUTOTUNE).cache()
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augmenter is not None:
        ds = ds.map(lambda a, b: (augmenter(a, training=True), b), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
