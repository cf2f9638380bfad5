"""Pieces shared by several families."""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.registry import FEATURES, HEAD


def check_min_size(input_shape: tuple[int, ...], minimum: int, model: str) -> None:
    """Reject inputs too small for the network's total downsampling."""
    if len(input_shape) != 3:
        raise ValueError(f"{model}: input_shape must be (height, width, channels), got {input_shape}")
    h, w = input_shape[:2]
    if min(h, w) < minimum:
        raise ValueError(f"{model}: input_shape {input_shape} is too small; height and width "
                         f"must be at least {minimum}")


def finish(inputs: keras.KerasTensor, features: keras.KerasTensor, *, num_classes: int,
           include_top: bool, name: str) -> keras.Model:
    """Attach the logits head (float32 even under mixed precision) unless `include_top` is off."""
    outputs = features
    if include_top:
        outputs = layers.Dense(num_classes, dtype="float32", name=HEAD)(features)
    return keras.Model(inputs, outputs, name=name)


__all__ = ["FEATURES", "check_min_size", "finish"]
