"""Siamese networks for verification (Bromley et al. 1993; Taigman et al. 2014, "DeepFace";
Schroff et al. 2015, "FaceNet").

Two weight-sharing towers map images to embeddings f(x); d(x1, x2) = ||f(x1) - f(x2)|| says how
alike two images are, so identities never seen in training are recognised from one example.

- `embedding_model`: any registered classifier's feature extractor (a layer's map) + an optional
  linear projection + L2 normalisation, trained with the triplet loss (cnnzoo.training.losses).
- `pair_model`: the binary variant, y = sigmoid(sum_k w_k |f(x1)_k - f(x2)_k| + b), a learned
  weighting of the embeddings' absolute difference, trained with binary cross-entropy on pairs.
  Both inputs go through the same tower object: one set of weights.
"""

from __future__ import annotations

import keras
from keras import layers

from cnnzoo.models.layers import AbsoluteDifference, L2Normalization
from cnnzoo.models.registry import FEATURES, HEAD, create_model

EMBEDDING = "embedding"  # the L2-normalised output layer of an embedding model


def backbone_from(arch: str, input_shape: tuple[int, ...], init: keras.Model | None = None,
                  layer: str = FEATURES, **hp) -> keras.Model:
    """The feature extractor (input -> `layer`, flattened) of `init` (e.g. the task-A
    classifier, whose weights it shares), or of a fresh `arch`."""
    source = init if init is not None else create_model(arch, input_shape=input_shape,
                                                        num_classes=2, **hp)
    try:
        out = source.get_layer(layer).output
    except ValueError:
        raise ValueError(f"verify.layer: {arch} has no layer {layer!r}; its layers: "
                         f"{', '.join(lyr.name for lyr in source.layers)}") from None
    if len(out.shape) > 2:
        out = layers.Flatten(name=f"{layer}_flat")(out)
    return keras.Model(source.inputs, out, name=f"{arch}_backbone")


def embedding_model(backbone: keras.Model, dim: int, name: str = "siamese_embedding") -> keras.Model:
    """backbone -> a linear projection to `dim` (none when `dim` is 0) -> L2 normalisation."""
    if dim < 0:
        raise ValueError(f"embedding dimension must be >= 0 (0: no projection), got {dim}")
    inputs = keras.Input(shape=backbone.input_shape[1:], name="input")
    x = backbone(inputs)
    if dim:
        x = layers.Dense(dim, dtype="float32", name="projection")(x)
    outputs = L2Normalization(dtype="float32", name=EMBEDDING)(x)
    return keras.Model(inputs, outputs, name=name)


def pair_model(embedding: keras.Model, name: str = "siamese_pairs") -> keras.Model:
    """Two inputs, one tower: the logit that (x1, x2) show the same identity."""
    shape = embedding.input_shape[1:]
    a, b = keras.Input(shape=shape, name="first"), keras.Input(shape=shape, name="second")
    diff = AbsoluteDifference(name="abs_difference")([embedding(a), embedding(b)])
    # The weights start at -1: before training the logit is minus the L1 distance, which already
    # ranks pairs by how alike their embeddings are; training reweights the dimensions.
    head = layers.Dense(1, dtype="float32", kernel_initializer=keras.initializers.Constant(-1.0),
                        name=HEAD)
    return keras.Model([a, b], head(diff), name=name)


def tower(pairs: keras.Model) -> keras.Model:
    """The shared embedding model inside a `pair_model`."""
    return next(lyr for lyr in pairs.layers if isinstance(lyr, keras.Model))
