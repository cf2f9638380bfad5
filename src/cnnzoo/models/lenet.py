"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document
recognition").

C1 conv 6@5×5 → S2 avg-pool → C3 conv 16@5×5 → S4 avg-pool → C5 conv 120@5×5 → F6 dense 84 →
output. At 32×32×1 with 10 classes this has 61,706 trainable parameters. The paper's partial
C3 connection table and RBF output are replaced by full connections and a linear head, as in
every modern re-implementation.
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.layers import FEATURES, check_min_size, finish
from cnnzoo.models.registry import register_model


@register_model("lenet5", family="lenet")
def build_lenet(*, name: str, input_shape: tuple[int, ...], num_classes: int,
                activation: str = "tanh", include_top: bool = True) -> keras.Model:
    # 5×5 valid conv, /2, 5×5 valid conv, /2, 5×5 valid conv: 32 is the smallest input that
    # leaves C5 a 1×1 map.
    check_min_size(input_shape, 32, name)
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(6, 5, activation=activation, name="c1_conv")(inputs)
    x = layers.AveragePooling2D(2, name="s2_pool")(x)
    x = layers.Conv2D(16, 5, activation=activation, name="c3_conv")(x)
    x = layers.AveragePooling2D(2, name="s4_pool")(x)
    x = layers.Conv2D(120, 5, activation=activation, name="c5_conv")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(84, activation=activation, name=FEATURES)(x)
    return finish(inputs, x, num_classes=num_classes, include_top=include_top, name=name)
