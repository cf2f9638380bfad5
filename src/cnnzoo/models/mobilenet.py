"""MobileNets: V1 (Howard et al. 2017) and V2 (Sandler et al. 2018).

V1 replaces each standard convolution by a depthwise separable one: a 3×3 depthwise conv (one
filter per channel) then a 1×1 pointwise conv, cutting the cost by ~1/N + 1/9 (the lecture's
6×6×3 → 4×4×5 example: 2,160 multiplies for a 3×3 conv, 672 separable). Width multiplier α
thins every layer. At 224×224×3, α=1, 1000 classes: 4,231,976 trainable parameters (as
keras.applications.MobileNet) and ≈569M multiply-accumulates.

V2 ("Inverted Residuals and Linear Bottlenecks"):

Inverted residual block: 1×1 expansion (×t) → 3×3 depthwise → 1×1 linear projection, with a
residual connection when stride is 1 and channels match. Width multiplier α scales every layer's
channels (rounded to multiples of 8, as in the reference). At 224×224×3, α=1, 1000 classes the
trainable parameter count matches keras.applications.MobileNetV2: 3,504,872.

`small_input=True` is the form for 28–32 px images: the stem keeps stride 1, so the network
downsamples 16× instead of 32× (a 2×2 final map at 32 px; keeping the first stride-2 stage at
stride 1 as well triples the cost on a CPU for little gain on Fashion-MNIST).

BatchNorm momentum defaults to Keras' 0.99 instead of the reference's 0.999: with a few hundred
steps per run, 0.999 leaves the moving statistics far from the data's (validation accuracy at
chance while training accuracy climbs). Parameter counts are unaffected.
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.kernels import FusedBatchNormalization
from cnnzoo.models.layers import check_min_size, finish_pooled
from cnnzoo.models.registry import register_model

# V1's body (Table 1): (pointwise filters, depthwise stride) per separable block.
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5,
             (1024, 2), (1024, 1))
# V2: (expansion t, output channels c, repeats n, first stride s), the paper's Table 2.
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor` without going more than 10% below `v`."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn(x, filters: int, kernel: int, stride: int, prefix: str, bn: dict,
             relu: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      name=f"{prefix}_conv")(x)
    x = FusedBatchNormalization(**bn, name=f"{prefix}_bn")(x)
    return layers.ReLU(6.0, name=f"{prefix}_relu")(x) if relu else x


def _inverted_residual(x, expansion: int, filters: int, stride: int, prefix: str, bn: dict):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = _conv_bn(y, expansion * in_channels, 1, 1, f"{prefix}_expand", bn)
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                               name=f"{prefix}_dw_conv")(y)
    y = FusedBatchNormalization(**bn, name=f"{prefix}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{prefix}_dw_relu")(y)
    # Linear bottleneck: no activation after the projection (the paper's section 3.2).
    y = _conv_bn(y, filters, 1, 1, f"{prefix}_project", bn, relu=False)
    if stride == 1 and in_channels == filters:
        y = layers.Add(name=f"{prefix}_add")([x, y])
    return y


def _input_and_stem(name: str, input_shape: tuple[int, ...], filters: int, alpha: float,
                    small_input: bool, bn_momentum: float):
    """What both MobileNets start with: the checks, the input and the 3x3 stem convolution
    (stride 2, or 1 for small inputs); returns them with the BatchNorm settings."""
    if alpha <= 0:
        raise ValueError(f"{name}: alpha must be > 0, got {alpha}")
    check_min_size(input_shape, 16 if small_input else 32, name)
    bn = dict(epsilon=1e-3, momentum=bn_momentum)
    inputs = keras.Input(shape=input_shape, name="input")
    return inputs, _conv_bn(inputs, filters, 3, 1 if small_input else 2, "stem", bn), bn


@register_model("mobilenet_v2", family="mobilenet")
def build_mobilenet_v2(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                       alpha: float = 1.0, small_input: bool = False,
                       bn_momentum: float = 0.99, include_top: bool = True) -> keras.Model:
    inputs, x, bn = _input_and_stem(name, input_shape, make_divisible(32 * alpha), alpha,
                                    small_input, bn_momentum)
    for s, (t, c, n, stride) in enumerate(V2_STAGES):
        for i in range(n):
            x = _inverted_residual(x, t, make_divisible(c * alpha), stride if i == 0 else 1,
                                   f"stage{s + 1}_block{i + 1}", bn)
    # The reference keeps 1280 channels for α ≤ 1 (the paper's footnote on small multipliers).
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = _conv_bn(x, last, 1, 1, "top", bn)
    return finish_pooled(inputs, x, num_classes=num_classes, include_top=include_top, name=name)


@register_model("mobilenet_v1", family="mobilenet")
def build_mobilenet_v1(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                       alpha: float = 1.0, small_input: bool = False, bn_momentum: float = 0.99,
                       dropout: float = 1e-3, include_top: bool = True) -> keras.Model:
    """`small_input=True` keeps the stem at stride 1 (16× downsampling instead of 32×)."""
    inputs, x, bn = _input_and_stem(name, input_shape, int(32 * alpha), alpha, small_input,
                                    bn_momentum)
    for i, (filters, stride) in enumerate(V1_BLOCKS, start=1):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                   name=f"block{i}_dw_conv")(x)
        x = FusedBatchNormalization(**bn, name=f"block{i}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"block{i}_dw_relu")(x)
        x = _conv_bn(x, int(filters * alpha), 1, 1, f"block{i}_pw", bn)
    return finish_pooled(inputs, x, num_classes=num_classes, include_top=include_top, name=name,
                         dropout=dropout)
