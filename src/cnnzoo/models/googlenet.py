"""GoogLeNet / Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions").

Inception module: four parallel branches — 1×1; 1×1 reduce → 3×3; 1×1 reduce → 5×5;
3×3 max pool → 1×1 projection — concatenated along channels. The 1×1 reductions are what make
it affordable: the lecture's 28×28×192 → 32-filter 5×5 branch costs 120.4M multiplies naively
and 12.4M with a 16-channel bottleneck. Channel configuration from the paper's Table 1; ReLU
after every convolution, local response normalisation in the stem, no batch normalisation
(`batch_norm=True` adds it after every convolution, as Inception-v2 did).
At 224×224: (3a) 28×28×256, (4e) 14×14×832, (5b) 7×7×1024.

`aux_logits=True` adds the two auxiliary classifiers (after 4a and 4d) as extra outputs.
`small_input=True` replaces the stem (which downsamples 8×) by a 3×3 convolution and one 3×3/2
max pool, so 32 px images reach (3a) at 16×16 and (5b) at 4×4.
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.kernels import FusedBatchNormalization
from cnnzoo.models.layers import (
    LocalResponseNormalization,
    check_min_size,
    finish_pooled,
    scale,
)
from cnnzoo.models.registry import register_model

# name: (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj) — Table 1.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = {"3b", "4e"}  # 3×3/2 max pooling between stages
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}


def _conv(x, filters: int, kernel: int, name: str, strides: int = 1, bn: bool = False):
    """Conv + ReLU, or with `bn` conv (no bias) + BatchNorm + ReLU (Ioffe & Szegedy 2015's
    "Inception with BN", which trains in far fewer steps)."""
    if not bn:
        return layers.Conv2D(filters, kernel, strides=strides, padding="same",
                             activation="relu", name=name)(x)
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=name)(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def inception(x, spec: tuple[int, ...], prefix: str, width: float = 1.0, bn: bool = False):
    c1, r3, c3, r5, c5, pp = (scale(c, width) for c in spec)
    b1 = _conv(x, c1, 1, f"{prefix}_1x1", bn=bn)
    b2 = _conv(_conv(x, r3, 1, f"{prefix}_3x3_reduce", bn=bn), c3, 3, f"{prefix}_3x3", bn=bn)
    b3 = _conv(_conv(x, r5, 1, f"{prefix}_5x5_reduce", bn=bn), c5, 5, f"{prefix}_5x5", bn=bn)
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{prefix}_pool")(x)
    b4 = _conv(b4, pp, 1, f"{prefix}_pool_proj", bn=bn)
    return layers.Concatenate(name=f"{prefix}_output")([b1, b2, b3, b4])


def _aux_classifier(x, num_classes: int, prefix: str, width: float):
    """5×5/3 average pool → 1×1 conv 128 → FC 1024 → dropout 0.7 → logits (section 5)."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{prefix}_pool")(x)
    x = _conv(x, scale(128, width), 1, f"{prefix}_conv")
    x = layers.Flatten(name=f"{prefix}_flatten")(x)
    x = layers.Dense(scale(1024, width), activation="relu", name=f"{prefix}_fc")(x)
    x = layers.Dropout(0.7, name=f"{prefix}_dropout")(x)
    return layers.Dense(num_classes, dtype="float32", name=f"{prefix}_head")(x)


@register_model("googlenet", family="googlenet")
def build_googlenet(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                    small_input: bool = False, width: float = 1.0, aux_logits: bool = False,
                    dropout: float = 0.4, batch_norm: bool = False,
                    include_top: bool = True) -> keras.Model:
    # The auxiliary heads' 5×5/3 pooling needs a 5×5 map at stage 4 (≥ 80 px, or 20 px small).
    check_min_size(input_shape, (40 if aux_logits else 8) if small_input else
                   (80 if aux_logits else 32), name)
    inputs = keras.Input(shape=input_shape, name="input")
    if small_input:
        x = _conv(inputs, scale(192, width), 3, "stem_conv", bn=batch_norm)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = _conv(inputs, scale(64, width), 7, "conv1_7x7", strides=2)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
        x = LocalResponseNormalization(name="pool1_lrn")(x)
        x = _conv(x, scale(64, width), 1, "conv2_3x3_reduce")
        x = _conv(x, scale(192, width), 3, "conv2_3x3")
        x = LocalResponseNormalization(name="conv2_lrn")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    aux = []
    for block, spec in INCEPTION.items():
        x = inception(x, spec, f"inception_{block}", width, batch_norm)
        if aux_logits and include_top and block in AUX_AFTER:
            aux.append(_aux_classifier(x, num_classes, AUX_AFTER[block], width))
        if block in POOL_AFTER:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool_{block}")(x)
    return finish_pooled(inputs, x, num_classes=num_classes, include_top=include_top, name=name,
                         dropout=dropout, extra_outputs=tuple(aux))
