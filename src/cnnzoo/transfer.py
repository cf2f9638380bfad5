"""Transfer learning: frozen backbone + new head, then fine-tuning (Yosinski et al. 2014).

The backbone is called with `training=False`, so its BatchNorm layers stay in inference mode
during head training *and* after unfreezing: updating BN statistics from a few hundred target
images would wreck the features learnt on the source task.
"""

from __future__ import annotations

import logging

import keras
from keras import layers

from cnnzoo.models import FEATURES, HEAD

log = logging.getLogger(__name__)


def backbone_name(model: keras.Model) -> str:
    return f"{model.name}_backbone"


def extract_backbone(model: keras.Model) -> keras.Model:
    """The sub-network from the input to the `features` layer, sharing weights with `model`."""
    return keras.Model(model.inputs, model.get_layer(FEATURES).output, name=backbone_name(model))


def with_new_head(pretrained: keras.Model, num_classes: int) -> keras.Model:
    """Frozen backbone of `pretrained` topped with a fresh `num_classes` logits head."""
    backbone = extract_backbone(pretrained)
    backbone.trainable = False
    inputs = keras.Input(shape=pretrained.input_shape[1:], name="input")
    x = backbone(inputs, training=False)
    outputs = layers.Dense(num_classes, dtype="float32", name=HEAD)(x)
    return keras.Model(inputs, outputs, name=pretrained.name)


def unfreeze(model: keras.Model, which: str | int = "all") -> keras.Model:
    """Make the backbone of a `with_new_head` model trainable: all of it, or its top `which`
    layers (counting only layers that hold weights)."""
    backbone = model.get_layer(backbone_name(model))
    backbone.trainable = True
    if which != "all":
        weighted = [lyr for lyr in backbone.layers if lyr.weights]
        if not 0 < which <= len(weighted):
            raise ValueError(f"finetune.unfreeze={which}: the backbone has {len(weighted)} "
                             "layers with weights; use 1..that or 'all'")
        for lyr in weighted[:-which]:
            lyr.trainable = False
    log.info("unfroze %s of %s's backbone", which, model.name)
    return model
