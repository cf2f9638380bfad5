"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale image
recognition"), configurations A (VGG-11), B (13), D (16) and E (19) of the paper's Table 1.

Stacks of 3×3 same-padded convolutions, 2×2 max pooling after each of five stages, then
4096-4096-classes fully connected layers. Canonical VGG-16 at 224×224×3: 138,357,544 parameters.
`batch_norm=True` adds BN after each convolution (torchvision's vgg*_bn). For small inputs,
`width` scales the channels and `fc_units` the classifier (32 px leaves a 1×1 map).
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.kernels import FusedBatchNormalization
from cnnzoo.models.layers import FEATURES, check_min_size, finish, scale
from cnnzoo.models.registry import register_variants

STAGE_CHANNELS = (64, 128, 256, 512, 512)
DEPTHS = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3),
          "vgg19": (2, 2, 4, 4, 4)}


def build_vgg(*, name: str, input_shape: tuple[int, ...], num_classes: int,
              depths: tuple[int, ...], batch_norm: bool = False, width: float = 1.0,
              fc_units: int = 4096, dropout: float = 0.5, include_top: bool = True) -> keras.Model:
    check_min_size(input_shape, 32, name)  # five 2×2 pools
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for s, (n, channels) in enumerate(zip(depths, STAGE_CHANNELS, strict=True)):
        for i in range(n):
            prefix = f"block{s + 1}_conv{i + 1}"
            x = layers.Conv2D(scale(channels, width), 3, padding="same", name=prefix)(x)
            if batch_norm:
                x = FusedBatchNormalization(epsilon=1e-5, name=f"{prefix}_bn")(x)
            x = layers.ReLU(name=f"{prefix}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{s + 1}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(fc_units, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="fc1_dropout")(x)
    x = layers.Dense(fc_units, activation="relu", name=FEATURES)(x)  # fc2
    return finish(inputs, x, num_classes=num_classes, include_top=include_top, name=name,
                  dropout=dropout)


register_variants(build_vgg, {key: {"depths": d} for key, d in DEPTHS.items()}, "vgg")
