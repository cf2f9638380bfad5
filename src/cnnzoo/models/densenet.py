"""DenseNet (Huang et al. 2017, "Densely connected convolutional networks").

Inside a dense block every layer (BN-ReLU-1×1 conv to 4k, BN-ReLU-3×3 conv to k, "DenseNet-B")
receives the concatenation of all earlier feature maps; growth rate k. Transition layers
(BN-ReLU-1×1 conv-2×2 average pool) compress channels by θ = 0.5 ("-C"). ImageNet models:
densenet121 (6, 12, 24, 16) — 7,978,856 parameters at 224×224×3, 1000 classes — 169 and 201.
`densenet_bc_100`: the paper's CIFAR DenseNet-BC (L=100, k=12, 3 blocks of 16 layers, 0.8M).
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.kernels import FusedBatchNormalization
from cnnzoo.models.layers import check_min_size, finish_pooled
from cnnzoo.models.registry import register_variants

_BN = dict(epsilon=1.001e-5)


def _bn_relu_conv(x, filters, kernel, name):
    x = FusedBatchNormalization(**_BN, name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    return layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)


def dense_block(x, n_layers, growth, prefix):
    for i in range(1, n_layers + 1):
        y = _bn_relu_conv(x, 4 * growth, 1, f"{prefix}_layer{i}_1")
        y = _bn_relu_conv(y, growth, 3, f"{prefix}_layer{i}_2")
        x = layers.Concatenate(name=f"{prefix}_layer{i}_concat")([x, y])
    return x


def transition(x, compression, prefix):
    x = _bn_relu_conv(x, int(x.shape[-1] * compression), 1, prefix)
    return layers.AveragePooling2D(2, name=f"{prefix}_pool")(x)


def build_densenet(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                   blocks: tuple[int, ...], growth_rate: int = 32, init_features: int | None = None,
                   compression: float = 0.5, small_input: bool = False,
                   include_top: bool = True) -> keras.Model:
    if not 0 < compression <= 1:
        raise ValueError(f"{name}: compression must be in (0, 1], got {compression}")
    init = init_features or 2 * growth_rate
    check_min_size(input_shape, 2 ** (len(blocks) - 1) * (1 if small_input else 4), name)
    inputs = keras.Input(shape=input_shape, name="input")
    if small_input:
        x = layers.Conv2D(init, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    else:
        x = layers.Conv2D(init, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
        x = FusedBatchNormalization(**_BN, name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for b, n in enumerate(blocks, start=1):
        x = dense_block(x, n, growth_rate, f"block{b}")
        if b < len(blocks):
            x = transition(x, compression, f"transition{b}")
    x = FusedBatchNormalization(**_BN, name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    return finish_pooled(inputs, x, num_classes=num_classes, include_top=include_top, name=name)


VARIANTS = {
    "densenet121": dict(blocks=(6, 12, 24, 16)),
    "densenet169": dict(blocks=(6, 12, 32, 32)),
    "densenet201": dict(blocks=(6, 12, 48, 32)),
    "densenet_bc_100": dict(blocks=(16, 16, 16), growth_rate=12, small_input=True),
}
register_variants(build_densenet, VARIANTS, "densenet")
