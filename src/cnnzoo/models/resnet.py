"""ResNet (He et al. 2016, "Deep residual learning for image recognition") and ResNeXt (Xie et al.
2017, "Aggregated residual transformations for deep neural networks").

Basic block: two 3×3 convs. Bottleneck: 1×1 reduce → 3×3 → 1×1 expand (×4), the stride on the 3×3
(torchvision's "v1.5"). Convolutions followed by BatchNorm carry no bias. The shortcut is the
identity, or when the shape changes either a 1×1 projection + BN (option B, ImageNet models) or
subsampling with zero-padded channels (option A, the paper's CIFAR models, no parameters).
ResNeXt is the bottleneck with a grouped 3×3 of `groups` (cardinality) × `width_per_group`.

Canonical counts (224×224×3, 1000 classes): resnet18 11,689,512; resnet50 25,557,032;
resnext50_32x4d 25,028,904; the using-CNNs lecture's resnet26 17,960,232; CIFAR resnet20 269,722 and
resnet56 853,018 (32×32×3, 10 classes).
`small_input=True` gives ImageNet models the CIFAR stem (3×3/1 conv, no max pool).
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.kernels import FusedBatchNormalization, GroupedConv2D
from cnnzoo.models.layers import ZeroPadShortcut, check_min_size, finish_pooled, scale
from cnnzoo.models.registry import register_variants

_BN = dict(epsilon=1e-5, momentum=0.9)


def _conv_bn(x, filters, kernel, stride, name, relu=True, groups=1):
    conv = GroupedConv2D if groups > 1 else layers.Conv2D
    x = conv(filters, kernel, strides=stride, padding="same", use_bias=False, groups=groups,
             name=f"{name}_conv")(x)
    x = FusedBatchNormalization(**_BN, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _shortcut(x, out_channels, stride, prefix, mode):
    if stride == 1 and x.shape[-1] == out_channels:
        return x
    if mode == "A":
        return ZeroPadShortcut(out_channels, stride, name=f"{prefix}_shortcut")(x)
    return _conv_bn(x, out_channels, 1, stride, f"{prefix}_shortcut", relu=False)


def basic_block(x, planes, stride, prefix, shortcut="B", **_):
    out = _conv_bn(x, planes, 3, stride, f"{prefix}_1")
    out = _conv_bn(out, planes, 3, 1, f"{prefix}_2", relu=False)
    out = layers.Add(name=f"{prefix}_add")([_shortcut(x, planes, stride, prefix, shortcut), out])
    return layers.ReLU(name=f"{prefix}_out")(out)


def bottleneck_block(x, planes, stride, prefix, shortcut="B", groups=1, width_per_group=64):
    width = int(planes * width_per_group / 64) * groups
    out = _conv_bn(x, width, 1, 1, f"{prefix}_1")
    out = _conv_bn(out, width, 3, stride, f"{prefix}_2", groups=groups)
    out = _conv_bn(out, planes * 4, 1, 1, f"{prefix}_3", relu=False)
    short = _shortcut(x, planes * 4, stride, prefix, shortcut)
    return layers.ReLU(name=f"{prefix}_out")(layers.Add(name=f"{prefix}_add")([short, out]))


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def build_resnet(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                 blocks: tuple[int, ...], block: str = "basic", planes: tuple[int, ...] = (64, 128, 256, 512),
                 stem: str = "imagenet", shortcut: str = "B", groups: int = 1,
                 width_per_group: int = 64, small_input: bool = False, width: float = 1.0,
                 include_top: bool = True) -> keras.Model:
    if block not in BLOCKS:
        raise ValueError(f"{name}: block must be one of {sorted(BLOCKS)}, got {block!r}")
    if len(blocks) != len(planes):
        raise ValueError(f"{name}: blocks {tuple(blocks)} and planes {tuple(planes)} differ in length")
    if shortcut not in ("A", "B"):
        raise ValueError(f"{name}: shortcut must be 'A' or 'B', got {shortcut!r}")
    planes = tuple(scale(p, width) for p in planes)
    if block == "bottleneck" and int(min(planes) * width_per_group / 64) < 1:
        raise ValueError(f"{name}: planes {planes} with width_per_group={width_per_group} give a "
                         "bottleneck narrower than 1 channel per group; planes × width_per_group "
                         "must be at least 64")
    cifar_stem = stem == "cifar" or small_input
    # Each stage after the first halves the map; the ImageNet stem divides by 4 first.
    check_min_size(input_shape, 2 ** (len(blocks) - 1) * (1 if cifar_stem else 4), name)
    inputs = keras.Input(shape=input_shape, name="input")
    if cifar_stem:
        x = _conv_bn(inputs, planes[0], 3, 1, "stem")
    else:
        x = _conv_bn(inputs, 64 if width == 1.0 else scale(64, width), 7, 2, "stem")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    make = BLOCKS[block]
    for s, (n, p) in enumerate(zip(blocks, planes, strict=True)):
        for i in range(n):
            x = make(x, p, 2 if (i == 0 and s > 0) else 1, f"stage{s + 1}_block{i + 1}",
                     shortcut=shortcut, groups=groups, width_per_group=width_per_group)
    return finish_pooled(inputs, x, num_classes=num_classes, include_top=include_top, name=name)


VARIANTS = {
    "resnet18": dict(blocks=(2, 2, 2, 2)),
    "resnet34": dict(blocks=(3, 4, 6, 3)),
    # The using-CNNs lecture's ResNet: an aggressive stem (7×7/2 conv and 3×3/2 pool: each side cut by 75%, 64
    # filters), 3 basic blocks at each of 64/128/256/512 filters, global average pooling and one
    # softmax layer; 1 + 12 × 2 + 1 = 26 weight layers.
    "resnet26": dict(blocks=(3, 3, 3, 3)),
    "resnet50": dict(blocks=(3, 4, 6, 3), block="bottleneck"),
    "resnet101": dict(blocks=(3, 4, 23, 3), block="bottleneck"),
    "resnet152": dict(blocks=(3, 8, 36, 3), block="bottleneck"),
    # CIFAR ResNets (section 4.2): 6n+2 layers, 16/32/64 channels, option A shortcuts.
    "resnet20": dict(blocks=(3, 3, 3), planes=(16, 32, 64), stem="cifar", shortcut="A"),
    "resnet56": dict(blocks=(9, 9, 9), planes=(16, 32, 64), stem="cifar", shortcut="A"),
    "resnext50_32x4d": dict(blocks=(3, 4, 6, 3), block="bottleneck", groups=32, width_per_group=4),
    "resnext101_32x8d": dict(blocks=(3, 4, 23, 3), block="bottleneck", groups=32,
                             width_per_group=8),
}
register_variants(build_resnet, VARIANTS,
                  lambda key: "resnext" if key.startswith("resnext") else "resnet")
