"""ImageNet starts (`pretrain.weights: imagenet`) for the families keras.applications has.

Why we wrap keras.applications instead of porting its tensors into our builders: a port by
position is exact only for VGG16/19, DenseNet121/169/201 and MobileNetV2 (DESIGN.md §5);
MobileNet V1 needs its classifier reshaped, and ResNet50/101/152 are v1 networks (conv biases
before BatchNorm, stride on the first 1×1) that our v1.5 builder would need folding and a new
option to match. Built on our input with `input_tensor`, the Keras network's layers sit flat in
our functional model, Keras' own loader checks every tensor by count and shape (naming the layer
that does not fit), and the network computes what the weights were trained for. Grey images are
repeated to three channels and resized to the weights' input size first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras
from keras import layers

from cnnzoo.models.layers import FEATURES, ImagenetPreprocess, finish

log = logging.getLogger(__name__)

_ROOT = "https://storage.googleapis.com/tensorflow/keras-applications/"
# our registry name -> (keras.applications constructor, preprocessing, no-top weights file)
APPS = {
    "vgg16": ("VGG16", "caffe", "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "vgg19": ("VGG19", "caffe", "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    **{f"resnet{d}": (f"ResNet{d}", "caffe",
                      f"resnet/resnet{d}_weights_tf_dim_ordering_tf_kernels_notop.h5")
       for d in (50, 101, 152)},
    **{f"densenet{d}": (f"DenseNet{d}", "torch",
                        f"densenet/densenet{d}_weights_tf_dim_ordering_tf_kernels_notop.h5")
       for d in (121, 169, 201)},
    "mobilenet_v1": ("MobileNet", "tf", "mobilenet/mobilenet_1_0_224_tf_no_top.h5"),
    "mobilenet_v2": ("MobileNetV2", "tf",
                     "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
}


def cache_path(arch: str) -> Path:
    """Where the weights file is looked for (and downloaded to): Keras' own cache."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / Path(APPS[arch][2]).name


def weights_file(arch: str) -> Path:
    """The cached no-top weights of `arch`, downloaded once; a clear error when offline."""
    if arch not in APPS:
        raise ValueError(f"pretrain.weights=imagenet: keras.applications has no ImageNet weights "
                         f"for {arch!r}; it has them for {', '.join(APPS)} (use "
                         "weights: scratch for the others)")
    path, url = cache_path(arch), _ROOT + APPS[arch][2]
    if path.is_file():
        return path
    try:
        return Path(keras.utils.get_file(path.name, url, cache_subdir="models",
                                         cache_dir=str(path.parent.parent)))
    except Exception as err:  # noqa: BLE001 — any download failure gets the same advice
        raise RuntimeError(f"could not download the ImageNet weights of {arch} from {url} "
                           f"({type(err).__name__}: {err}); without internet, copy that file "
                           f"to {path} and rerun") from None


def imagenet_model(arch: str, *, input_shape: tuple[int, ...], num_classes: int,
                   size: int = 224) -> keras.Model:
    """keras.applications' `arch` with ImageNet weights on our input, with a fresh logits head
    and a `features` layer like every builder of the registry."""
    path = weights_file(arch)
    constructor, mode, _ = APPS[arch]
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
    x = layers.Resizing(size, size, name="resize")(x)
    x = ImagenetPreprocess(mode, name="imagenet_preprocess")(x)
    base = getattr(keras.applications, constructor)(include_top=False, weights=None,
                                                    input_tensor=x)
    try:
        base.load_weights(str(path))
    except ValueError as err:
        raise RuntimeError(f"{path} does not fit keras.applications.{constructor}: {err}") from None
    x = layers.GlobalAveragePooling2D(name=FEATURES)(base.output)
    log.info("%s: ImageNet weights from %s (input resized to %d×%d RGB)", arch, path, size, size)
    return finish(inputs, x, num_classes=num_classes, include_top=True, name=arch)
