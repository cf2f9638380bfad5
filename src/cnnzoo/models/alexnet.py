"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet classification with deep convolutional
neural networks").

Five convolutions (the first two followed by local response normalisation and overlapping 3×3/2
max pooling), then three fully connected layers with dropout. The canonical build is the
single-GPU ("ungrouped") form at 227×227×3: 62,378,344 parameters for 1000 classes.

`small_input=True` swaps the 11×11/4 stem for a 5×5/1 one so 32 px images keep a 3×3 map
before the classifier; `width` scales every layer's channels and units.
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.layers import FEATURES, LocalResponseNormalization, check_min_size, finish, scale
from cnnzoo.models.registry import register_model

CONVS = (96, 256, 384, 384, 256)
FC_UNITS = 4096


def _input(input_shape: tuple[int, ...], width: float, small_input: bool):
    """The input, every layer's width (conv1-conv5, fc6/fc7 units) and, for small inputs, the
    5x5/1 conv1 that AlexNet and ZFNet share (None: the caller builds its canonical conv1)."""
    widths = (*(scale(c, width) for c in CONVS), scale(FC_UNITS, width))
    inputs = keras.Input(shape=input_shape, name="input")
    x = (layers.Conv2D(widths[0], 5, padding="same", activation="relu", name="conv1")(inputs)
         if small_input else None)
    return inputs, x, widths


def _convs3_to_fc7(x, c3: int, c4: int, c5: int, units: int, dropout: float):
    """conv3-conv5 (3x3, "same"), the 3x3/2 pool and the two dropout + fully connected layers
    that AlexNet and ZFNet share."""
    x = layers.Conv2D(c3, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(c4, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.Conv2D(c5, 3, padding="same", activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Dense(units, activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="fc7_dropout")(x)
    return layers.Dense(units, activation="relu", name=FEATURES)(x)  # fc7


@register_model("alexnet", family="alexnet")
def build_alexnet(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                  small_input: bool = False, width: float = 1.0, dropout: float = 0.5,
                  include_top: bool = True) -> keras.Model:
    # Three 3×3/2 valid pools need a 15 px map after the stem: 67 px with the 11×11/4 stem.
    check_min_size(input_shape, 15 if small_input else 67, name)
    inputs, x, (c1, c2, c3, c4, c5, units) = _input(input_shape, width, small_input)
    if not small_input:
        x = layers.Conv2D(c1, 11, strides=4, activation="relu", name="conv1")(inputs)
    x = LocalResponseNormalization(name="lrn1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(c2, 5, padding="same", activation="relu", name="conv2")(x)
    x = LocalResponseNormalization(name="lrn2")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = _convs3_to_fc7(x, c3, c4, c5, units, dropout)
    return finish(inputs, x, num_classes=num_classes, include_top=include_top, name=name)


@register_model("zfnet", family="alexnet")
def build_zfnet(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                small_input: bool = False, width: float = 1.0, dropout: float = 0.5,
                include_top: bool = True) -> keras.Model:
    """ZFNet (Zeiler & Fergus 2013, "Visualizing and understanding convolutional networks",
    Fig. 3): AlexNet with a 7×7/2 first convolution (not 11×11/4) and a 5×5/2 second one, 3×3/2
    max pools, normalisation after the first two pools. At 224×224×3 the maps are 110, 55, 26,
    13, 13, 13 and 6 (the figure's), from one pixel of zero padding before conv1 and "same"
    pools 1 and 2. Parameters for 1000 classes: 62,357,608, counted from Fig. 3's layers,
    ungrouped, with biases (the paper states no total); the flattened 6×6×256 = 9,216 features
    feed the same 4096-4096 classifier as AlexNet, so the count is AlexNet's but for conv1/conv2.

    `small_input=True`: a 5×5/1 conv1 and a stride-1 conv2, so 32 px images keep a 3×3 map.
    """
    check_min_size(input_shape, 9 if small_input else 53, name)
    inputs, x, (c1, c2, c3, c4, c5, units) = _input(input_shape, width, small_input)
    if not small_input:
        x = layers.ZeroPadding2D(1, name="conv1_pad")(inputs)
        x = layers.Conv2D(c1, 7, strides=2, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = LocalResponseNormalization(name="lrn1")(x)
    x = layers.Conv2D(c2, 5, strides=1 if small_input else 2,
                      padding="same" if small_input else "valid", activation="relu",
                      name="conv2")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    x = LocalResponseNormalization(name="lrn2")(x)
    x = _convs3_to_fc7(x, c3, c4, c5, units, dropout)
    return finish(inputs, x, num_classes=num_classes, include_top=include_top, name=name)


@register_model("alexnet_cifar", family="alexnet")
def build_alexnet_cifar(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                        width: float = 1.0, dropout: float = 0.0,
                        include_top: bool = True) -> keras.Model:
    """The using-CNNs lecture's "AlexNet alike" CIFAR network, layer for layer as its table: conv
    64@7×7,
    2×2/2 max pool, conv 128@5×5, pool, conv 256@3×3, pool (every conv stride 1, "same", ReLU),
    flatten, FC 512, FC 512, FC 10. At 32×32×3 with 10 classes: 2,875,018 parameters.

    The table's "Flatten → 1024" does not follow from its own MaxPool3 row (256 channels at
    4×4 = 4,096 values); this builds the consistent network, whose FC4 has 4,096 inputs
    (2,097,664 parameters; a 1,024-input FC4 would give the network 1,302,154). The table has
    no dropout, so `dropout` defaults to 0 (the using-CNNs lecture adds it as a later experiment).
    """
    check_min_size(input_shape, 8, name)  # three /2 pools
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for i, (filters, kernel) in enumerate(((64, 7), (128, 5), (256, 3)), start=1):
        x = layers.Conv2D(scale(filters, width), kernel, padding="same", activation="relu",
                          name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    units = scale(512, width)
    if dropout:
        x = layers.Dropout(dropout, name="fc4_dropout")(x)
    x = layers.Dense(units, activation="relu", name="fc4")(x)
    if dropout:
        x = layers.Dropout(dropout, name="fc5_dropout")(x)
    x = layers.Dense(units, activation="relu", name=FEATURES)(x)  # fc5
    return finish(inputs, x, num_classes=num_classes, include_top=include_top, name=name,
                  dropout=dropout)
