"""A YOLO v1-style single-shot detector (Redmon, Divvala, Girshick, Farhadi 2016, "You only look
once: unified, real-time object detection") on any registered classifier's feature map.

The image is divided into an S×S grid; each cell predicts B boxes (x, y relative to the cell,
√w, √h relative to the image, a confidence) and C class scores: an S×S×(B·5 + C) output (the
paper's S = 7, B = 2, C = 20 gives 7×7×30). The paper's head is two fully connected layers on
GoogLeNet-like features; here a convolutional head maps the backbone's H×H map onto the grid
(kernel H − (S − 1)·⌊H/S⌋, stride ⌊H/S⌋), so one cell's prediction comes from that cell's part of
the map, followed by a 3×3 and a 1×1 convolution (leaky ReLU 0.1, the paper's activation). The
outputs are raw: cnnzoo.tasks.detection applies the sigmoids and the softmax in the loss and decoder.
"""

from __future__ import annotations

import inspect

import keras
from keras import layers

from cnnzoo.models.kernels import FusedBatchNormalization
from cnnzoo.models.registry import HEAD, create_model, register_model


def feature_map_layer(model: keras.Model, layer: str | None) -> str:
    """`layer`, or the backbone's last layer with a spatial (4-D) output."""
    if layer is not None:
        try:
            out = model.get_layer(layer).output
        except ValueError:
            raise ValueError(f"detect.layer: {model.name} has no layer {layer!r}; its layers: "
                             f"{', '.join(lyr.name for lyr in model.layers)}") from None
        if len(out.shape) != 4:
            raise ValueError(f"detect.layer {layer!r} of {model.name} is not a spatial map "
                             f"(output shape {tuple(out.shape)})")
        return layer
    spatial = [lyr.name for lyr in model.layers[1:] if len(lyr.output.shape) == 4]
    return spatial[-1]


def _bn_leaky(x, i: int):
    x = FusedBatchNormalization(name=f"head_bn{i}")(x)
    return layers.LeakyReLU(0.1, name=f"head_leaky{i}")(x)


def grid_and_boxes(settings: dict) -> tuple[int, int]:
    """(S, B) of a detector built with `settings` (the builder's defaults where absent)."""
    defaults = inspect.signature(build_yolo).parameters
    return (settings.get("grid", defaults["grid"].default),
            settings.get("boxes", defaults["boxes"].default))


@register_model("yolo_v1", family="yolo", task="detect")
def build_yolo(*, name: str, input_shape: tuple[int, ...], num_classes: int,
               backbone: str = "resnet20", backbone_settings: dict | None = None,
               layer: str | None = None, grid: int = 7, boxes: int = 2,
               head_width: int = 128) -> keras.Model:
    if grid < 1 or boxes < 1:
        raise ValueError(f"{name}: grid and boxes must be >= 1, got {grid} and {boxes}")
    base = create_model(backbone, input_shape=input_shape, num_classes=2,
                        **(backbone_settings or {}))
    fmap = base.get_layer(feature_map_layer(base, layer)).output
    size = min(fmap.shape[1], fmap.shape[2])
    if size < grid:
        raise ValueError(f"{name}: {backbone}'s map at {layer or 'its last spatial layer'} is "
                         f"{fmap.shape[1]}×{fmap.shape[2]} on a {input_shape[0]}×{input_shape[1]} "
                         f"input, smaller than the {grid}×{grid} grid: use a larger input, a "
                         "smaller grid or an earlier detect.layer")
    stride = size // grid
    x = layers.Conv2D(head_width, size - (grid - 1) * stride, strides=stride, use_bias=False,
                      name="grid_conv")(fmap)
    x = _bn_leaky(x, 0)
    x = layers.Conv2D(head_width, 3, padding="same", use_bias=False, name="head_conv1")(x)
    x = _bn_leaky(x, 1)
    out = layers.Conv2D(boxes * 5 + num_classes, 1, dtype="float32", name=HEAD)(x)
    return keras.Model(base.inputs, out, name=name)
