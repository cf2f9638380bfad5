"""The lecture's basic augmentations (flip, rotation, translation, zoom, brightness, contrast)
as a list of Keras 3 core preprocessing layers, configured by the `augment` section."""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.config import AugmentConfig

VALUE_RANGE = (0.0, 1.0)  # images enter the models as floats in [0, 1]


def augmentation_layers(cfg: AugmentConfig, seed: int) -> list[keras.Layer]:
    """Only the enabled augmentations, each seeded differently so they are not correlated."""
    fill = dict(fill_mode="constant", fill_value=0.0)  # Fashion-MNIST background is black
    candidates = [
        (cfg.flip != "none", lambda s: layers.RandomFlip(cfg.flip, seed=s, name="flip")),
        (cfg.rotation > 0, lambda s: layers.RandomRotation(cfg.rotation, seed=s, name="rotation",
                                                          **fill)),
        (cfg.translation > 0, lambda s: layers.RandomTranslation(
            cfg.translation, cfg.translation, seed=s, name="translation", **fill)),
        (cfg.zoom > 0, lambda s: layers.RandomZoom(cfg.zoom, seed=s, name="zoom", **fill)),
        (cfg.brightness > 0, lambda s: layers.RandomBrightness(
            cfg.brightness, value_range=VALUE_RANGE, seed=s, name="brightness")),
        (cfg.contrast > 0, lambda s: layers.RandomContrast(
            cfg.contrast, value_range=VALUE_RANGE, seed=s, name="contrast")),
    ]
    return [make(seed + i) for i, (on, make) in enumerate(candidates) if on]


def build_augmenter(cfg: AugmentConfig, seed: int) -> keras.Sequential | None:
    """A Sequential of the enabled layers, or None when every augmentation is off."""
    layer_list = augmentation_layers(cfg, seed)
    return keras.Sequential(layer_list, name="augment") if layer_list else None
