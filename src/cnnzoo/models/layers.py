"""Pieces shared by several families, including the custom layers (serialisable, no Lambda)."""

from __future__ import annotations

import keras
from keras import layers, ops

from cnnzoo.models.registry import FEATURES, HEAD


def check_min_size(input_shape: tuple[int, ...], minimum: int, model: str) -> None:
    """Reject inputs too small for the network's total downsampling."""
    if len(input_shape) != 3:
        raise ValueError(f"{model}: input_shape must be (height, width, channels), got {input_shape}")
    h, w = input_shape[:2]
    if min(h, w) < minimum:
        raise ValueError(f"{model}: input_shape {input_shape} is too small; height and width "
                         f"must be at least {minimum}")


def scale(channels: int, width: float) -> int:
    """Width multiplier, never below 1 channel (variants shrink networks for small CPUs)."""
    return max(1, int(round(channels * width)))


def finish(inputs: keras.KerasTensor, features: keras.KerasTensor, *, num_classes: int,
           include_top: bool, name: str, dropout: float = 0.0,
           extra_outputs: tuple = ()) -> keras.Model:
    """Attach the logits head (float32 even under mixed precision) unless `include_top` is off."""
    outputs = features
    if include_top:
        if dropout:
            features = layers.Dropout(dropout, name="head_dropout")(features)
        outputs = layers.Dense(num_classes, dtype="float32", name=HEAD)(features)
        if extra_outputs:
            outputs = [outputs, *extra_outputs]
    return keras.Model(inputs, outputs, name=name)


def finish_pooled(inputs: keras.KerasTensor, maps: keras.KerasTensor, **head) -> keras.Model:
    """`finish` after global average pooling of the last maps into the features layer: how every
    network since Network-in-Network ends."""
    return finish(inputs, layers.GlobalAveragePooling2D(name=FEATURES)(maps), **head)


@keras.saving.register_keras_serializable(package="cnnzoo")
class LocalResponseNormalization(layers.Layer):
    """Across-channel LRN (Krizhevsky et al. 2012, section 3.3):

    b[c] = a[c] / (k + alpha / n * sum_{c' in window(c, n)} a[c']^2) ** beta

    with AlexNet's k=2, n=5, alpha=1e-4, beta=0.75. Caffe divides alpha by the window size n;
    `tf.nn.local_response_normalization` does not, so its alpha is alpha / n here. The window
    sums squared activations over n neighbouring channels, from ops TFLite converts to built-ins.
    """

    def __init__(self, depth: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75,
                 **kwargs):
        super().__init__(**kwargs)
        self.depth, self.k, self.alpha, self.beta = depth, k, alpha, beta

    def call(self, x, training=None):
        x32 = ops.cast(x, "float32")
        radius = self.depth // 2
        if training:
            # Training computes the same function from fast kernels: the window sums as a 1x1
            # convolution with a banded 0/1 matrix, the power as exp(-beta log(.)), whose
            # gradient is cheap. Forward+backward of AlexNet's first LRN, (64, 32, 32, 12), here:
            # 2.2 ms, against 24.8 ms for the shifted slices below and 6.5 ms for TF's own LRN
            # op. Inference keeps the slices: plain ops that TFLite quantises (its
            # LOCAL_RESPONSE_NORMALIZATION has a float kernel only).
            import numpy as np
            import tensorflow as tf

            c = np.arange(x.shape[-1])
            band = (np.abs(c[:, None] - c[None, :]) <= radius).astype(np.float32)
            window = tf.nn.conv2d(tf.square(x32), band[None, None], 1, "VALID")
            out = x32 * tf.exp(-self.beta * tf.math.log(self.k + self.alpha / self.depth * window))
            return ops.cast(out, x.dtype)
        sq = ops.pad(ops.square(x32), [[0, 0], [0, 0], [0, 0], [radius, radius]])
        # Sum over a sliding channel window: stack shifted slices (depth is small, e.g. 5).
        channels = x.shape[-1]
        window = sum(sq[..., i:i + channels] for i in range(self.depth))
        out = x32 / ops.power(self.k + (self.alpha / self.depth) * window, self.beta)
        return ops.cast(out, x.dtype)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "k": self.k, "alpha": self.alpha,
                "beta": self.beta}


@keras.saving.register_keras_serializable(package="cnnzoo")
class ZeroPadShortcut(layers.Layer):
    """He et al. 2016's option A shortcut for CIFAR ResNets: subsample by `stride` and zero-pad
    the new channels, adding no parameters."""

    def __init__(self, out_channels: int, stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.out_channels, self.stride = out_channels, stride

    def call(self, x):
        x = x[:, :: self.stride, :: self.stride, :]
        extra = self.out_channels - x.shape[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        ceil = lambda d: None if d is None else -(-d // self.stride)  # noqa: E731
        return (n, ceil(h), ceil(w), self.out_channels)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels, "stride": self.stride}


@keras.saving.register_keras_serializable(package="cnnzoo")
class AbsoluteDifference(layers.Layer):
    """|a - b| of two tensors: the Siamese binary head's input (Koch et al. 2015; DeepFace)."""

    def call(self, inputs):
        a, b = inputs
        return ops.abs(a - b)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package="cnnzoo")
class L2Normalization(layers.Layer):
    """x / ||x|| over the last axis. `tf.math.l2_normalize` rather than Keras'
    UnitNormalization: the TFLite converter maps it to one L2_NORMALIZATION op, which has an
    int8 kernel, where UnitNormalization's SQUARE stays a float island in an int8 model."""

    def call(self, x):
        import tensorflow as tf

        return tf.math.l2_normalize(x, axis=-1, epsilon=1e-12)


__all__ = ["FEATURES", "AbsoluteDifference", "L2Normalization", "LocalResponseNormalization",
           "ZeroPadShortcut", "check_min_size", "finish", "scale"]


@keras.saving.register_keras_serializable(package="cnnzoo")
class ImagenetPreprocess(layers.Layer):
    """[0, 1] RGB -> the input range of keras.applications' ImageNet weights: "caffe" (BGR,
    0-255 minus the mean pixel: VGG, ResNet), "torch" (per-channel standardised: DenseNet),
    "tf" ([-1, 1]: MobileNets)."""

    MEAN = {"caffe": (103.939, 116.779, 123.68), "torch": (0.485, 0.456, 0.406)}
    STD = (0.229, 0.224, 0.225)

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "torch", "tf"):
            raise ValueError(f"unknown ImageNet preprocessing {mode!r}; use caffe, torch or tf")
        self.mode = mode

    def call(self, x):
        if self.mode == "tf":
            return x * 2.0 - 1.0
        if self.mode == "torch":
            return (x - ops.array(self.MEAN["torch"], x.dtype)) / ops.array(self.STD, x.dtype)
        return ops.flip(x, axis=-1) * 255.0 - ops.array(self.MEAN["caffe"], x.dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
