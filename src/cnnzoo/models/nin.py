"""Network in Network (Lin, Chen, Yan 2014).

Each mlpconv block is a spatial convolution followed by two 1×1 convolutions (a small MLP
sliding over the image); global average pooling replaces the fully connected classifier.
Canonical: the ImageNet model of the authors' Caffe model zoo (4 mlpconv blocks, 7,595,176
parameters for 1000 classes). `small_input=True`: the paper's CIFAR-10 model (3 blocks).

The last 1×1 convolution (classes outputs) followed by global average pooling is implemented as
global average pooling followed by a dense layer: both are linear, so they commute and the
function and parameter count are identical, while the pooled 1024-d (192-d) vector becomes the
`features` layer that transfer learning needs.
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.kernels import FusedBatchNormalization
from cnnzoo.models.layers import check_min_size, finish_pooled, scale
from cnnzoo.models.registry import register_model

# Per block: (spatial filters, kernel, stride, 1×1 widths, pooling after the block or None).
# The classifier's 1×1 conv is the last block's final width -> dense head (see docstring).
IMAGENET = ((96, 11, 4, (96, 96), "max"), (256, 5, 1, (256, 256), "max"),
            (384, 3, 1, (384, 384), "max"), (1024, 3, 1, (1024,), None))
CIFAR = ((192, 5, 1, (160, 96), "max"), (192, 5, 1, (192, 192), "avg"), (192, 3, 1, (192,), None))


@register_model("nin", family="nin")
def build_nin(*, name: str, input_shape: tuple[int, ...], num_classes: int,
              small_input: bool = False, width: float = 1.0, dropout: float = 0.5,
              batch_norm: bool = False, include_top: bool = True) -> keras.Model:
    """`batch_norm=True` puts BatchNorm after every convolution (not in the 2014 paper, which
    predates it): the same network trains to a given accuracy in far fewer steps."""
    blocks = CIFAR if small_input else IMAGENET
    check_min_size(input_shape, 8 if small_input else 67, name)
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for b, (filters, kernel, stride, mlp, pool) in enumerate(blocks, start=1):
        # The ImageNet model's first conv is valid-padded (Caffe pad 0); the rest keep size.
        pad = "valid" if stride > 1 else "same"
        convs = [(f"mlpconv{b}_conv", scale(filters, width), kernel, stride, pad)]
        convs += [(f"mlpconv{b}_cccp{i}", scale(u, width), 1, 1, "valid")
                  for i, u in enumerate(mlp, start=1)]
        for conv_name, n, k, s, p in convs:
            x = layers.Conv2D(n, k, strides=s, padding=p, use_bias=not batch_norm,
                              name=conv_name)(x)
            if batch_norm:
                x = FusedBatchNormalization(name=f"{conv_name}_bn")(x)
            x = layers.ReLU(name=f"{conv_name}_relu")(x)
        if pool:
            pool_layer = layers.MaxPooling2D if pool == "max" else layers.AveragePooling2D
            x = pool_layer(3, strides=2, padding="same" if small_input else "valid",
                           name=f"mlpconv{b}_pool")(x)
            # Dropout follows every pooled block in the CIFAR model, only block 3 in ImageNet's.
            if dropout and (small_input or b == 3):
                x = layers.Dropout(dropout, name=f"mlpconv{b}_dropout")(x)
    return finish_pooled(inputs, x, num_classes=num_classes, include_top=include_top, name=name)
