"""What a classifier learned, as numbers ready to plot (cnnzoo.reporting.insight_figures draws them):
first-layer filters, the test images that most activate chosen filters of an early, a middle
and a late layer (Zeiler & Fergus 2014), activation maximisation (gradient ascent on the input
from seeded noise, Erhan et al. 2009 / Olah et al. 2017) and Grad-CAM (Selvaraju et al. 2017).

Models take float images in [0, 1] and return logits. Every family of the registry works:
"feature layers" are the convolutions (plain, grouped, depthwise, separable), the
concatenations (Inception modules, DenseNet blocks) and the residual sums (ResNet, ResNeXt,
MobileNetV2) with a 4-D output, in graph order.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

_FEATURE_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                  keras.layers.SeparableConv2D, keras.layers.Concatenate, keras.layers.Add)


def trunk(model: keras.Model) -> tuple[keras.Model, list[keras.layers.Layer]]:
    """(the model holding the feature layers, the layers applied after it). A transferred
    model is Input -> backbone (a nested model: the convolutions) -> head, so its layers are
    reached through the backbone; a model built by the registry is flat and its own trunk."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not nested:
        return model, []
    return nested[0], model.layers[model.layers.index(nested[0]) + 1:]


def feature_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Convolutions, concatenations and residual sums with an (N, H, W, C) output, input to
    output."""
    return [layer for layer in trunk(model)[0].layers if isinstance(layer, _FEATURE_TYPES)
            and len(layer.output.shape) == 4]


def first_filters(model: keras.Model) -> np.ndarray:
    """The first convolution's kernels as (filters, kh, kw, channels) images, each scaled to
    [0, 1] around 0.5 = zero weight (so a grey pixel is a weight of 0 and the sign shows)."""
    convs = [layer for layer in feature_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"{model.name} has no convolution to show")
    kernel = np.asarray(convs[0].kernel)  # (kh, kw, in, out)
    filters = np.moveaxis(kernel, -1, 0)
    if filters.shape[-1] not in (1, 3):  # a first conv on other than grey/RGB: the mean
        filters = filters.mean(-1, keepdims=True)
    scale = np.abs(filters).max(axis=(1, 2, 3), keepdims=True)
    return 0.5 + 0.5 * filters / np.maximum(scale, 1e-12)


def pick_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """An early, a middle and a late feature layer (fewer when the model has fewer)."""
    found = feature_layers(model)
    if not found:
        raise ValueError(f"{model.name} has no convolution or concatenation to inspect")
    picks = {"early": found[0], "middle": found[len(found) // 2], "late": found[-1]}
    seen, out = set(), {}
    for depth, layer in picks.items():
        if layer.name not in seen:
            seen.add(layer.name)
            out[depth] = layer
    return out


@dataclass
class Exemplars:
    """For each inspected layer, the chosen filters and the indices of their top-k images."""
    layer: str
    depth: str
    filters: list[int]
    images: np.ndarray  # (filters, k) indices into the images searched


def top_exemplars(model: keras.Model, x: np.ndarray, *, filters: int = 4, k: int = 6,
                  batch_size: int = 256) -> list[Exemplars]:
    """The `k` images of `x` that most activate (spatial maximum) each of `filters` filters per
    picked layer. The filters shown are the most selective ones: the largest spread of that
    maximum across the images (a filter that fires on everything says nothing)."""
    layers = pick_layers(model)
    probe = keras.Model(trunk(model)[0].input, [layer.output for layer in layers.values()])
    peaks = [[] for _ in layers]
    for start in range(0, len(x), batch_size):
        outs = probe(x[start:start + batch_size], training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        for i, out in enumerate(outs):
            peaks[i].append(tf.reduce_max(out, axis=(1, 2)).numpy())
    result = []
    for (depth, layer), found in zip(layers.items(), peaks, strict=True):
        peak = np.concatenate(found).astype(np.float64)  # (images, channels)
        chosen = np.argsort(-peak.std(axis=0), kind="stable")[:filters]
        top = np.argsort(-peak[:, chosen], axis=0, kind="stable")[:k].T
        result.append(Exemplars(layer.name, depth, [int(c) for c in chosen], top))
    return result


def _blur(x: tf.Tensor) -> tf.Tensor:
    """A 3x3 binomial blur per channel: damps the high-frequency patterns that gradient ascent
    otherwise grows (adversarial noise rather than features)."""
    k = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = tf.tile((k[:, None] * k[None, :])[:, :, None, None], [1, 1, x.shape[-1], 1])
    return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")


def maximize_classes(model: keras.Model, classes: list[int], *, steps: int = 96,
                     step_size: float = 0.05, jitter: int = 2, blur_every: int = 4,
                     seed: int = 0) -> np.ndarray:
    """Activation maximisation: one image per class that maximises its logit, by normalised
    gradient ascent from seeded low-contrast noise, with random jitter (shifts of up to
    `jitter` pixels) and a blur every `blur_every` steps. Returns (classes, H, W, C) in [0, 1]."""
    rng = np.random.default_rng(seed)
    shape = (len(classes), *model.input_shape[1:])
    x = tf.Variable(0.5 + 0.05 * rng.standard_normal(shape).astype(np.float32))
    index = tf.constant(list(enumerate(classes)), tf.int32)
    shifts = rng.integers(-jitter, jitter + 1, (steps, 2))

    @tf.function
    def step(dy: tf.Tensor, dx: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            moved = tf.roll(x, shift=[dy, dx], axis=[1, 2])
            score = tf.reduce_sum(tf.gather_nd(model(moved, training=False), index))
        grad = tape.gradient(score, x)
        grad /= tf.math.reduce_std(grad, axis=(1, 2, 3), keepdims=True) + 1e-8
        x.assign(tf.clip_by_value(x + step_size * grad, 0.0, 1.0))

    for i, (dy, dx) in enumerate(shifts):
        step(tf.constant(int(dy)), tf.constant(int(dx)))
        if blur_every and (i + 1) % blur_every == 0:
            x.assign(_blur(x))
    return x.numpy()


def cam_layer(model: keras.Model, min_size: int = 4) -> keras.layers.Layer:
    """Grad-CAM's layer: the last feature layer whose map is at least `min_size` wide (the last
    layers of small-input networks are 1x1 or 2x2, too coarse to show where), else the widest."""
    found = feature_layers(model)
    if not found:
        raise ValueError(f"{model.name} has no convolution or concatenation for Grad-CAM")
    wide = [layer for layer in found if layer.output.shape[1] >= min_size]
    return wide[-1] if wide else max(found, key=lambda layer: layer.output.shape[1])


def grad_cam(model: keras.Model, x: np.ndarray, classes: np.ndarray,
             layer: keras.layers.Layer | None = None) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) in [0, 1] at the input's size for `classes` (one per image):
    ReLU of the layer's channels weighted by the spatial mean of the class logit's gradient."""
    layer = layer or cam_layer(model)
    body, tail = trunk(model)
    probe = keras.Model(body.input, [layer.output, body.output])
    inputs = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        maps, logits = probe(inputs, training=False)
        for after in tail:  # e.g. a transferred model's head
            logits = after(logits, training=False)
        score = tf.gather(logits, tf.constant(classes, tf.int32), batch_dims=1)
    grads = tape.gradient(score, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))[..., None]
    cam = tf.image.resize(cam, x.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cam / np.maximum(peak, 1e-12), 0.0)
