"""Transfer learning: frozen backbone + new head, then fine-tuning (Yosinski et al. 2014).

The lecture's recipe: (1) compute the frozen backbone's features once, (2) train a new head on
them (a linear probe), (3) fine-tune the top blocks, or all. The default fine-tuning rate is
not lower than pretraining's: measured, the short-trained sources need it (see params.yaml).
Blocks are defined per family by layer-name prefix (`BLOCKS`), not by raw layer counts.

While the head trains, the backbone is called with `training=False`: its BatchNorm layers stay
in inference mode with the source task's statistics. Fine-tuning keeps frozen parts that way
(Keras runs a BatchNorm layer with `trainable=False` in inference mode); with `adapt_batchnorm`
the unfrozen BatchNorm layers learn the target's statistics (the backbone is called without
`training=False`), which the unfrozen convolutions need once they move.
"""

from __future__ import annotations

import logging
import re

import keras
import numpy as np
from keras import layers

from cnnzoo.data.serving_input import to_unit
from cnnzoo.models import FEATURES, HEAD, get_entry

log = logging.getLogger(__name__)


def copy_matching(model: keras.Model, source: str) -> int:
    """Copy into `model` every layer of the saved model `source` with the same name and weight
    shapes (convolutions do not depend on the input size, so a classifier's layers serve a
    detector or a U-Net on larger scenes). Returns how many layers were copied."""
    start = keras.models.load_model(source)
    copied = 0
    for layer in model.layers:
        try:
            weights = start.get_layer(layer.name).get_weights()
        except ValueError:
            continue
        if weights and [w.shape for w in weights] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(weights)
            copied += 1
    log.info("%s: %d layers start from %s", model.name, copied, source)
    return copied


def create_from(arch: str, shape, num_classes: int, settings: dict,
                start: str | None) -> keras.Model:
    """`arch` built with `settings` (a detector's backbone, a U-Net's encoder), the layers it
    shares with the saved classifier `start` copied in (None: random weights)."""
    from cnnzoo.models import create_model

    model = create_model(arch, input_shape=shape, num_classes=num_classes, **settings)
    if start:
        copy_matching(model, start)
    return model


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


# A layer's block is its family's pattern's last matching group in its name (every builder names
# its layers from a block prefix; keras.applications' names, used by ImageNet starts, are
# covered too); other families use the name up to the first underscore.
BLOCKS = {
    "googlenet": r"^(inception_\w\w|stem|aux\d)",
    "resnet": r"^(stage\d+_block\d+|conv\d_block\d+|stem|conv1)",
    "resnext": r"^(stage\d+_block\d+|stem)",
    "densenet": r"^(block\d+_layer\d+|transition\d+|conv\d_block\d+|pool\d|stem|final|conv1|bn)",
    "mobilenet": r"^(stage\d+_block\d+|block_?\d+|stem|top|conv_(?:dw|pw)_(\d+)|expanded_conv|Conv)",
}


def blocks(backbone: keras.Model, family: str) -> list[list[keras.layers.Layer]]:
    """The backbone's layers that hold weights, grouped into blocks, input side first."""
    pattern = re.compile(BLOCKS.get(family, r"^([^_]+)"))
    groups: dict[str, list] = {}
    for lyr in backbone.layers:
        if lyr.weights:
            match = pattern.match(lyr.name)
            groups.setdefault(match.group(match.lastindex) if match else lyr.name,
                              []).append(lyr)
    return list(groups.values())


def unfreeze(model: keras.Model, top_blocks: int | None = None,
             adapt_batchnorm: bool = False) -> keras.Model:
    """Make the backbone of a `with_new_head` model trainable: all of it (None), or its top
    `top_blocks` blocks. Frozen BatchNorm layers stay in inference mode; unfrozen ones too,
    unless `adapt_batchnorm` (then the same layers are returned in a model that passes the
    training flag on to the backbone)."""
    backbone = model.get_layer(backbone_name(model))
    backbone.trainable = True
    if top_blocks is not None:
        groups = blocks(backbone, get_entry(model.name).family)
        if not 0 < top_blocks <= len(groups):
            raise ValueError(f"transfer.top_blocks={top_blocks}: {model.name}'s backbone has "
                             f"{len(groups)} blocks; use 1..{len(groups)} or fine_tune_all")
        for group in groups[:-top_blocks]:
            for lyr in group:
                lyr.trainable = False
        names = [g[0].name for g in groups[-top_blocks:]]
        log.info("unfroze the top %d block(s) of %s's backbone (from %s)", top_blocks,
                 model.name, ", ".join(names))
    else:
        log.info("unfroze all of %s's backbone", model.name)
    if not adapt_batchnorm:
        return model
    inputs = keras.Input(shape=model.input_shape[1:], name="input")
    outputs = model.get_layer(HEAD)(backbone(inputs))
    return keras.Model(inputs, outputs, name=model.name)


def features(backbone: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Frozen-backbone features of uint8 images (N, H, W, C) or copies (C, N, H, W, C), computed
    once (the lecture's "precompute the activations"), in inference mode."""
    flat = images.reshape(-1, *images.shape[-3:])
    out = backbone.predict(to_unit(flat), batch_size=batch_size, verbose=0)
    return out.reshape(*images.shape[:-3], out.shape[-1]).astype(np.float32)


def head_model(dim: int, num_classes: int, name: str) -> keras.Model:
    """The head alone, trained on precomputed features; `attach_head` moves it onto the net."""
    inputs = keras.Input(shape=(dim,), name="features")
    outputs = layers.Dense(num_classes, dtype="float32", name=HEAD)(inputs)
    return keras.Model(inputs, outputs, name=name)


def attach_head(pretrained: keras.Model, head: keras.Model) -> keras.Model:
    """`with_new_head(pretrained)` carrying the weights of a head trained on features."""
    model = with_new_head(pretrained, head.get_layer(HEAD).units)
    model.get_layer(HEAD).set_weights(head.get_layer(HEAD).get_weights())
    return model
