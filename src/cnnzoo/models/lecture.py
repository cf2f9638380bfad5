"""The lectures' own small networks (the convnet-examples lecture's "First convolutional network
example").

`first_cnn`: a 32×32×1 input, one valid 5×5 convolution with 10 filters, a 2×2/2 max pool and
one fully connected layer of 200 units with softmax. Its parameters are 250 + 10 (conv) and
1,960 × 200 + 200 (FC) = 392,460. The slide counts 13×13×10 = 1,690 pooled outputs and 338,460
parameters, but a valid 5×5 convolution takes 32 to 28 and the pool 28 to 14, so 14×14×10 = 1,960
values reach the FC layer: the slide's 13 is the slip (tests/test_worked_examples.py).
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.layers import FEATURES, check_min_size, finish
from cnnzoo.models.registry import register_model


@register_model("first_cnn", family="lecture")
def build_first_cnn(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                    filters: int = 10, include_top: bool = True) -> keras.Model:
    # The 5×5 valid conv and the /2 pool leave at least a 1×1 map from 6 px on.
    check_min_size(input_shape, 6, name)
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(filters, 5, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, strides=2, name="pool1")(x)
    x = layers.Flatten(name=FEATURES)(x)
    return finish(inputs, x, num_classes=num_classes, include_top=include_top, name=name)
