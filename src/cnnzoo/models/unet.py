"""U-Net (Ronneberger, Fischer & Brox 2015, "U-Net: convolutional networks for biomedical image
segmentation").

A contracting path of two 3×3 convolutions per level and 2×2 max pooling (channels doubling per
level), then an expanding path: 2×2 transposed convolution ("up-convolution", halving the
channels), concatenation with the encoder's features of the same level (the skip connection),
two 3×3 convolutions; a 1×1 convolution gives a class score for every pixel. Output: logits
(H', W', num_classes).

Canonical (the paper's Figure 1): `depth=4, width=64, padding="valid", batch_norm=False` on a
572×572×1 tile gives a 388×388×2 map and 31,030,658 parameters; valid convolutions shrink every
level, so the encoder's features are centre-cropped before concatenation, as in the paper. The
small-input form used by the pipeline pads instead (`padding="same"`, output size = input size),
adds BatchNorm and narrows the channels (`width`).

`encoder=<classifier>` takes the contracting path from a registered classifier instead (TernausNet,
Iglovikov & Shvets 2018: U-Net with a VGG-11 encoder, whose ImageNet weights it starts from): the
skip connections are the classifier's last map at each of the `depth` finer resolutions and the
bottom its last map at 1/2**depth; the expanding path is U-Net's. Its layers keep the classifier's
names, so a pretrained classifier's weights can be copied in (cnnzoo.stages.segment).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from cnnzoo.models.kernels import FusedBatchNormalization
from cnnzoo.models.registry import create_model, register_model


def _double_conv(x, filters: int, prefix: str, padding: str, batch_norm: bool):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding=padding, use_bias=not batch_norm,
                          name=f"{prefix}_conv{i}")(x)
        if batch_norm:
            x = FusedBatchNormalization(name=f"{prefix}_bn{i}")(x)
        x = layers.ReLU(name=f"{prefix}_relu{i}")(x)
    return x


def _crop_to(skip, target, name: str):
    """Centre-crop the encoder's map to the decoder's size (only valid padding needs it)."""
    dh = skip.shape[1] - target.shape[1]
    dw = skip.shape[2] - target.shape[2]
    if not dh and not dw:
        return skip
    return layers.Cropping2D(((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)), name=name)(skip)


def encoder_maps(encoder: keras.Model, depth: int) -> list:
    """The outputs of `encoder`'s last layer at each resolution 1, 1/2, ... 1/2**depth of its
    input: the skip connections, then the bottom."""
    size = encoder.input_shape[1]
    last = {}
    for layer in encoder.layers[1:]:
        shape = layer.output.shape
        if len(shape) == 4 and shape[1] is not None:
            last[int(shape[1])] = layer
    wanted = [size // 2 ** level for level in range(depth + 1)]
    missing = [s for s in wanted if s not in last]
    if missing or size % 2 ** depth:
        raise ValueError(f"{encoder.name} has no map of size {missing or size / 2 ** depth} on a "
                         f"{size}x{size} input (it has {sorted(last, reverse=True)}): U-Net's "
                         f"depth {depth} needs one at each of {wanted}; lower the depth or use "
                         "another encoder")
    return [last[s].output for s in wanted]


@register_model("unet", family="unet", task="segment")
def build_unet(*, name: str, input_shape: tuple[int, ...], num_classes: int, depth: int = 4,
               width: int = 64, padding: str = "valid", batch_norm: bool = False,
               encoder: str | None = None, encoder_settings: dict | None = None) -> keras.Model:
    """`depth` poolings (levels below the first); `width` channels at the first level of the
    expanding path (and of the contracting one, without an `encoder`)."""
    if depth < 1 or width < 1:
        raise ValueError(f"{name}: depth and width must be >= 1, got depth={depth}, width={width}")
    if padding not in ("same", "valid"):
        raise ValueError(f"{name}: padding must be 'same' or 'valid', got {padding!r}")
    if len(input_shape) != 3:
        raise ValueError(f"{name}: input_shape must be (height, width, channels), got {input_shape}")
    if padding == "same" and any(s % 2 ** depth for s in input_shape[:2]):
        raise ValueError(f"{name}: input_shape {input_shape} must be divisible by 2**depth = "
                         f"{2 ** depth} in height and width (depth={depth})")
    if encoder is not None:
        if padding != "same":
            raise ValueError(f"{name}: an encoder's maps need padding 'same', got {padding!r}")
        base = create_model(encoder, input_shape=input_shape, num_classes=2,
                            **(encoder_settings or {}))
        inputs, (*skips, x) = base.inputs, encoder_maps(base, depth)
    else:
        inputs = keras.Input(shape=input_shape, name="input")
        x, skips = inputs, []
        for level in range(depth):
            x = _double_conv(x, width * 2 ** level, f"down{level + 1}", padding, batch_norm)
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
        x = _double_conv(x, width * 2 ** depth, "bottom", padding, batch_norm)
    for level in reversed(range(depth)):
        prefix = f"up{level + 1}"
        x = layers.Conv2DTranspose(width * 2 ** level, 2, strides=2, name=f"{prefix}_upconv")(x)
        skip = _crop_to(skips[level], x, f"{prefix}_crop")
        x = layers.Concatenate(name=f"{prefix}_concat")([skip, x])
        x = _double_conv(x, width * 2 ** level, prefix, padding, batch_norm)
    outputs = layers.Conv2D(num_classes, 1, dtype="float32", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


# The lecture's transposed-convolution example: a 2×2 input and a 3×3 filter.
LECTURE_INPUT = ((3, 0), (1, 5))
LECTURE_FILTER = ((2, 7, 4), (3, 1, 7), (4, 2, 1))
# What the slide prints as the result. Its first two rows are the stride-1 result; its last two
# rows are not, at any stride or cropping (stride 1 gives [15, 22, 15, 35] and [4, 22, 11, 5]).
LECTURE_SLIDE_RESULT = ((6, 21, 12, 0), (11, 20, 60, 20), (15, 23, 24, 35), (4, 12, 11, 5))


def transposed_conv_example(stride: int = 1) -> np.ndarray:
    """The lecture's example through a Keras `Conv2DTranspose` (valid padding, no bias): every
    input value scales the filter, which is added into the output at stride × its position."""
    layer = layers.Conv2DTranspose(1, 3, strides=stride, padding="valid", use_bias=False)
    x = np.array(LECTURE_INPUT, np.float32)[None, :, :, None]
    layer.build(x.shape)
    layer.set_weights([np.array(LECTURE_FILTER, np.float32)[:, :, None, None]])
    return np.asarray(layer(x))[0, :, :, 0].round().astype(int)
