"""Augmentation: the lectures' transformations as Keras 3 core preprocessing layers, written to
disk as deterministic TFRecord shards, plus batch-level mixup and CutMix applied while training.

Mixup (Zhang et al. 2018): x̃ = (1 − λ)x₁ + λx₂, ỹ = (1 − λ)y₁ + λy₂ with λ ~ Beta(α, α).
CutMix (Yun et al. 2019): a random box of x₂ (area fraction 1 − λ' for λ' ~ Beta(α, α)) is pasted
into x₁ and the labels are mixed by the pasted area. Both draw from stateless random ops seeded
per batch, so a run is reproducible.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from cnnzoo.config import AugmentConfig
from cnnzoo.data.serving_input import to_unit
from cnnzoo.files import atomic_path

log = logging.getLogger(__name__)
VALUE_RANGE = (0.0, 1.0)  # images enter the models as floats in [0, 1]


def augmentation_layers(cfg: AugmentConfig, seed: int, image_shape: tuple[int, ...]) -> list:
    """Only the enabled augmentations, each seeded differently so they are not correlated."""
    h, w, c = image_shape
    fill = dict(fill_mode="constant", fill_value=0.0)  # black background, as the data's padding
    vr = dict(value_range=VALUE_RANGE)
    candidates = [
        (cfg.flip != "none", lambda s: [layers.RandomFlip(cfg.flip, seed=s, name="flip")]),
        (cfg.crop_padding > 0, lambda s: [
            layers.ZeroPadding2D(cfg.crop_padding, name="crop_pad"),
            layers.RandomCrop(h, w, seed=s, name="crop")]),
        (cfg.rotation > 0, lambda s: [layers.RandomRotation(cfg.rotation, seed=s, name="rotation",
                                                           **fill)]),
        (cfg.translation > 0, lambda s: [layers.RandomTranslation(
            cfg.translation, cfg.translation, seed=s, name="translation", **fill)]),
        (cfg.zoom > 0, lambda s: [layers.RandomZoom(cfg.zoom, seed=s, name="zoom", **fill)]),
        (cfg.brightness > 0, lambda s: [layers.RandomBrightness(cfg.brightness, seed=s,
                                                               name="brightness", **vr)]),
        (cfg.contrast > 0, lambda s: [layers.RandomContrast(cfg.contrast, seed=s, name="contrast",
                                                           **vr)]),
        (cfg.color_jitter > 0 and c == 3, lambda s: [layers.RandomColorJitter(
            saturation_factor=cfg.color_jitter, hue_factor=cfg.color_jitter, seed=s,
            name="color_jitter", **vr)]),
        (cfg.rand_augment_ops > 0, lambda s: [layers.RandAugment(
            num_ops=cfg.rand_augment_ops, factor=cfg.rand_augment_magnitude, seed=s,
            name="rand_augment", **vr)]),
        (cfg.erasing > 0, lambda s: [layers.RandomErasing(cfg.erasing, fill_value=0.0, seed=s,
                                                          name="erasing", **vr)]),
    ]
    return [lyr for i, (on, make) in enumerate(candidates) if on for lyr in make(seed + i)]


def build_augmenter(cfg: AugmentConfig, seed: int,
                    image_shape: tuple[int, ...] = (32, 32, 1)) -> keras.Sequential | None:
    """A Sequential of the enabled layers, or None when every augmentation is off."""
    layer_list = augmentation_layers(cfg, seed, image_shape)
    return keras.Sequential(layer_list, name="augment") if layer_list else None


# -- shards ------------------------------------------------------------------------------------

def shard_name(split: str, copy: int) -> str:
    return f"{split}-{copy:03d}.tfrecord"


def _example(image: np.ndarray, label: int) -> bytes:
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    # deterministic: protobuf otherwise orders the map's keys by PYTHONHASHSEED, and the same
    # images made new bytes (and reran every training stage) in another process.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True)


def write_shards(x: np.ndarray, y: np.ndarray, cfg: AugmentConfig, seed: int, out_dir: Path,
                 split: str, batch_size: int = 256) -> list[Path]:
    """Write `cfg.copies` augmented variants of (x, y) as one TFRecord shard each.

    Deterministic by seed: batches are augmented eagerly, in order, by layers seeded with
    `seed` and the copy number, so the same inputs and seed give byte-identical shards.
    """
    paths = []
    for copy in range(cfg.copies):
        augmenter = build_augmenter(cfg, seed + 1000 * (copy + 1), x.shape[1:])
        path = out_dir / shard_name(split, copy)
        with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
            for start in range(0, len(x), batch_size):
                batch = to_unit(x[start:start + batch_size])
                if augmenter is not None:
                    batch = np.asarray(augmenter(batch, training=True))
                pixels = np.clip(np.round(batch * 255.0), 0, 255).astype(np.uint8)
                for img, label in zip(pixels, y[start:start + batch_size], strict=True):
                    writer.write(_example(img, label))
        paths.append(path)
    # out_dir is the stage's temporary folder; the stage logs the final one.
    log.info("%s: wrote %d augmented cop%s of %d images", split, cfg.copies,
             "y" if cfg.copies == 1 else "ies", len(x))
    return paths


_FEATURES = {"image": tf.io.FixedLenFeature([], tf.string),
             "label": tf.io.FixedLenFeature([], tf.int64)}


def parse_records(records: tf.Tensor, image_shape: tuple[int, ...]):
    """A batch (or one) of serialized examples -> (uint8 images, int64 labels), vectorized."""
    ex = tf.io.parse_example(records, _FEATURES)
    images = tf.io.decode_raw(ex["image"], tf.uint8)
    return tf.reshape(images, tf.concat([tf.shape(records), image_shape], 0)), ex["label"]


# -- batch-level mixing ------------------------------------------------------------------------

def sample_beta(alpha: float, n, seed: tf.Tensor) -> tf.Tensor:
    """λ ~ Beta(α, α) as G₁/(G₁+G₂) with Gᵢ ~ Gamma(α), stateless."""
    g1 = tf.random.stateless_gamma([n], seed=seed, alpha=alpha)
    g2 = tf.random.stateless_gamma([n], seed=seed + 1, alpha=alpha)
    return g1 / (g1 + g2)


def mixup(x: tf.Tensor, y: tf.Tensor, alpha: float, seed: tf.Tensor):
    """Mix each sample with a random partner of the same batch. Returns (x̃, ỹ, λ, partner)."""
    n = tf.shape(x)[0]
    lam = sample_beta(alpha, n, seed)
    partner = tf.argsort(tf.random.stateless_uniform([n], seed=seed + 2))
    lx = tf.reshape(lam, [-1, 1, 1, 1])
    x_mix = (1.0 - lx) * x + lx * tf.gather(x, partner)
    y_mix = (1.0 - lam[:, None]) * y + lam[:, None] * tf.gather(y, partner)
    return x_mix, y_mix, lam, partner


def cutmix(x: tf.Tensor, y: tf.Tensor, alpha: float, seed: tf.Tensor):
    """Paste a random box of each sample's partner; labels mixed by the pasted area fraction."""
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    lam = sample_beta(alpha, n, seed)
    partner = tf.argsort(tf.random.stateless_uniform([n], seed=seed + 2))
    centre = tf.random.stateless_uniform([n, 2], seed=seed + 3)
    side = tf.sqrt(1.0 - lam)  # box sides as fractions, so its area is about 1 − λ
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    rows = (tf.range(hf)[None, :] + 0.5) / hf  # pixel centres in [0, 1]
    cols = (tf.range(wf)[None, :] + 0.5) / wf
    in_rows = tf.abs(rows - centre[:, :1]) < side[:, None] / 2
    in_cols = tf.abs(cols - centre[:, 1:]) < side[:, None] / 2
    mask = tf.cast(in_rows[:, :, None] & in_cols[:, None, :], x.dtype)[..., None]
    x_mix = x * (1.0 - mask) + tf.gather(x, partner) * mask
    area = tf.reduce_mean(mask, axis=[1, 2, 3])
    y_mix = (1.0 - area[:, None]) * y + area[:, None] * tf.gather(y, partner)
    return x_mix, y_mix, area, partner


def batch_mixer(cfg: AugmentConfig):
    """A function (x, y, seed) -> (x, y) applying mixup and/or CutMix, or None when both are off."""
    ops = [(mixup, cfg.mixup_alpha), (cutmix, cfg.cutmix_alpha)]
    ops = [(fn, a) for fn, a in ops if a > 0]
    if not ops:
        return None

    def mix(x, y, seed):
        if len(ops) == 1:
            fn, a = ops[0]
            return fn(x, y, a, seed)[:2]
        coin = tf.random.stateless_uniform([], seed=seed + 7) < 0.5
        return tf.cond(coin, lambda: ops[0][0](x, y, ops[0][1], seed)[:2],
                       lambda: ops[1][0](x, y, ops[1][1], seed)[:2])

    return mix
