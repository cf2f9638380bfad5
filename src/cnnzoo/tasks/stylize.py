"""Neural style transfer (Gatys, Ecker, Bethge 2016, "Image style transfer using convolutional
neural networks"): optimise an image so that its VGG features match the content image at one
layer and the Gram matrices of its features match the style image's at several.

  Gram matrix of layer l: G_l = F_lᵀ F_l / (H_l W_l), F_l the (H_l W_l) × C_l feature matrix
  content loss:  mean((F_c(x) − F_c(content))²) / mean(F_c(content)²)
  style loss:    (1/L) Σ_l mean((G_l(x) − G_l(style))²) / mean(G_l(style)²)
  total variation (a smoothness prior): mean of squared neighbour differences

Each term is divided by the size of its target, so the weights mean the same for any network
(the paper's α/β ratios of 1e-3 to 1e-4 assume raw ImageNet-VGG magnitudes). The paper's layers:
content conv4_2, style conv1_1 … conv5_1. The registry's VGGs name their layers as Keras' VGG19
does, so both use `block4_conv2` and `block{1-5}_conv1`.

Networks: ImageNet VGG19 (keras.applications' weights, downloaded once through cnnzoo.training.imagenet),
or any `.keras` VGG of the pipeline (models/pretrain/vgg11.keras: trained on 32 px grey
Fashion-MNIST items, so its features know little of paintings and the result is weaker). A grey
network transfers style to the luminance only; the content image's colour is put back (Gatys et
al. 2016, "Preserving color in neural artistic style transfer").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from cnnzoo.data.serving_input import to_unit

log = logging.getLogger(__name__)

CONTENT_LAYER = "block4_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
PIPELINE_VGG = Path("models/pretrain/vgg11.keras")


def gram(features: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) -> (B, C, C): Σ over positions of f fᵀ, divided by H·W."""
    shape = tf.shape(features)
    flat = tf.reshape(features, (shape[0], shape[1] * shape[2], shape[3]))
    return tf.einsum("bnc,bnd->bcd", flat, flat) / tf.cast(shape[1] * shape[2], features.dtype)


@dataclass
class Extractor:
    model: keras.Model  # [0, 1] image (1, H, W, channels) -> [content features, *style features]
    channels: int
    source: str


def _activation(model: keras.Model, name: str) -> str:
    """A conv layer's post-ReLU output: `<name>_relu` in BatchNorm VGGs, else the layer itself."""
    names = {lyr.name for lyr in model.layers}
    if f"{name}_relu" in names:
        return f"{name}_relu"
    if name not in names:
        raise ValueError(f"{model.name} has no layer {name!r} (stylize needs a VGG with the "
                         f"registry's block<i>_conv<j> names)")
    return name


def chain_extractor(model: keras.Model, content_layer: str = CONTENT_LAYER,
                    style_layers: tuple[str, ...] = STYLE_LAYERS, source: str = "") -> Extractor:
    """The convolutional part of a VGG-like chain, rebuilt on inputs of any size (its layers,
    and so its weights, shared)."""
    wanted = [_activation(model, n) for n in (content_layer, *style_layers)]
    channels = model.input_shape[-1]
    inputs = keras.Input((None, None, channels), name="image")
    x, outputs = inputs, {}
    for layer in model.layers[1:]:
        if len(outputs) == len(set(wanted)):
            break
        if isinstance(layer, layers.Flatten | layers.Dense | layers.GlobalAveragePooling2D):
            missing = sorted(set(wanted) - set(outputs))
            raise ValueError(f"{model.name}: reached {layer.name} before {missing}")
        x = layer(x)
        if layer.name in wanted:
            outputs[layer.name] = x
    return Extractor(keras.Model(inputs, [outputs[n] for n in wanted]), channels,
                     source or model.name)


def imagenet_extractor() -> Extractor:
    """ImageNet VGG19 on [0, 1] RGB images (caffe pre-processing inside)."""
    from cnnzoo.models.layers import ImagenetPreprocess
    from cnnzoo.training import imagenet

    path = imagenet.weights_file("vgg19")
    inputs = keras.Input((None, None, 3), name="image")
    x = ImagenetPreprocess("caffe", name="imagenet_preprocess")(inputs * 255.0)
    base = keras.applications.VGG19(include_top=False, weights=None, input_tensor=x)
    base.load_weights(str(path))
    outputs = [base.get_layer(n).output for n in (CONTENT_LAYER, *STYLE_LAYERS)]
    return Extractor(keras.Model(inputs, outputs), 3, f"ImageNet VGG19 ({path})")


def pick_extractor(weights: str) -> Extractor:
    """`imagenet`, a `.keras` VGG path, or `auto`: ImageNet VGG19 when its weights are cached
    or can be downloaded, else the pipeline's VGG."""
    if weights not in ("auto", "imagenet"):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"--weights {path}: no such model file")
        return chain_extractor(keras.models.load_model(path), source=str(path))
    try:
        return imagenet_extractor()
    except RuntimeError as err:
        if weights == "imagenet" or not PIPELINE_VGG.is_file():
            hint = ("" if weights == "imagenet" else
                    f"; offline, train the pipeline's VGG first (`dvc repro pretrain@vgg11`, "
                    f"writes {PIPELINE_VGG}) or pass --weights MODEL.keras")
            raise RuntimeError(f"{err}{hint}") from None
        log.warning("ImageNet VGG19 weights unavailable (%s); using the pipeline's %s, trained "
                    "on 32 px grey items: expect a weaker transfer", err, PIPELINE_VGG)
        return chain_extractor(keras.models.load_model(PIPELINE_VGG), source=str(PIPELINE_VGG))


def load_image(path: str | Path, size: int) -> np.ndarray:
    """An RGB float image in [0, 1], its longer side resized to `size`."""
    from PIL import Image

    from cnnzoo.data.images import read_image

    img = read_image(path, 3)  # an ImageError (ValueError) names the file and the problem
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                     Image.LANCZOS)
    return to_unit(img)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


class Losses:
    """The weighted content, style and total-variation terms of one image."""

    def __init__(self, extractor: Extractor, content: np.ndarray, style: np.ndarray, *,
                 content_weight: float, style_weight: float, tv_weight: float):
        self.net = extractor.model
        feats = self.net(content[None])
        self.content_target = feats[0]
        self.style_targets = [gram(f) for f in self.net(style[None])[1:]]
        self.weights = (content_weight, style_weight, tv_weight)

    def terms(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        feats = self.net(image)
        content = tf.reduce_mean((feats[0] - self.content_target) ** 2) / tf.reduce_mean(
            self.content_target ** 2)
        style = tf.add_n([tf.reduce_mean((gram(f) - t) ** 2) / tf.reduce_mean(t ** 2)
                          for f, t in zip(feats[1:], self.style_targets, strict=True)])
        style = style / len(self.style_targets)
        tv = (tf.reduce_mean((image[:, 1:] - image[:, :-1]) ** 2)
              + tf.reduce_mean((image[:, :, 1:] - image[:, :, :-1]) ** 2))
        c, s, t = self.weights
        return {"content": content, "style": style, "tv": tv,
                "total": c * content + s * style + t * tv}


def stylize(extractor: Extractor, content: np.ndarray, style: np.ndarray, *, steps: int = 300,
            learning_rate: float = 0.02, content_weight: float = 1.0, style_weight: float = 10.0,
            tv_weight: float = 10.0, seed: int = 0, noise: float = 0.1,
            progress: bool = True) -> tuple[np.ndarray, list[dict[str, float]]]:
    """The stylised RGB image in [0, 1] and the loss terms per step. Starts from the content
    image plus seeded uniform noise and optimises it with Adam, clipped to [0, 1]."""
    grey = extractor.channels == 1
    c_in, s_in = (_luma(content)[..., None], _luma(style)[..., None]) if grey else (content, style)
    losses = Losses(extractor, c_in, s_in, content_weight=content_weight,
                    style_weight=style_weight, tv_weight=tv_weight)
    rng = np.random.default_rng(seed)
    start = np.clip(c_in + noise * rng.uniform(-1, 1, c_in.shape).astype(np.float32), 0, 1)
    image = tf.Variable(start[None])
    opt = keras.optimizers.Adam(learning_rate)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            terms = losses.terms(image)
        opt.apply_gradients([(tape.gradient(terms["total"], image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return terms

    history = []
    bar = keras.utils.Progbar(steps, stateful_metrics=["content", "style", "tv"],
                              verbose=1 if progress else 0)
    for i in range(steps):
        terms = {k: float(v) for k, v in step().items()}
        history.append(terms)
        bar.update(i + 1, [(k, terms[k]) for k in ("content", "style", "tv")])
    out = image.numpy()[0]
    if grey:  # the network's luminance with the content image's colour (YCbCr chroma)
        out = recolour(out[..., 0], content)
    return out, history


def recolour(luma: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Luminance `luma` with the chroma of `rgb` (both [0, 1], same size)."""
    from PIL import Image

    ycbcr = np.asarray(Image.fromarray(np.uint8(np.round(rgb * 255))).convert("YCbCr"), np.uint8)
    ycbcr = ycbcr.copy()
    ycbcr[..., 0] = np.uint8(np.round(np.clip(luma, 0, 1) * 255))
    return to_unit(Image.fromarray(ycbcr, "YCbCr").convert("RGB"))


def save_png(image: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    from cnnzoo.files import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.uint8(np.round(np.clip(image, 0, 1) * 255))).save(tmp, format="PNG")
