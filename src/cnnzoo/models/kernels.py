"""Faster training kernels behind two stock Keras layers, measured in `make bench`
(docs/benchmarks.md).

Keras 3.15 on TensorFlow computes a training-mode BatchNormalization from separate moment, sub,
mul and rsqrt ops (Keras 2 called TF's fused kernel), and runs every grouped convolution as a
nested XLA cluster, which XLA on a CPU makes ~30x slower than TF's own grouped `conv2d`. These
subclasses call TF's kernels instead; the math, weights, saved configs and the inference graph
(what the TFLite converter sees) are unchanged, so they drop in wherever the stock layer was.

`fast = False` on a layer (before its training step is traced) restores the stock computation:
the benchmark's plain-Keras reference uses it to train what a 40-line script would get.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf
from keras import layers


@keras.saving.register_keras_serializable(package="cnnzoo")
class FusedBatchNormalization(layers.BatchNormalization):
    """BatchNormalization whose training step is TF's FusedBatchNormV3 (oneDNN on CPU, cuDNN on
    GPU): 2.3x faster forward+backward than Keras 3's composite on a (64, 32, 32, 32) batch here.
    The moving statistics follow Keras' update (momentum, the biased batch variance)."""

    fast = True

    def call(self, inputs, training=None, mask=None):
        if not (self.fast and training and self.trainable and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4
                and self.axis in (-1, 3)):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones((channels,))
        beta = self.beta if self.center else tf.zeros((channels,))
        empty = tf.constant([], tf.float32)
        # float16/bfloat16 inputs are fine: the kernel keeps its statistics in float32.
        y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=tf.cast(gamma, tf.float32), offset=tf.cast(beta, tf.float32),
            mean=empty, variance=empty, epsilon=max(self.epsilon, 1.001e-5),  # cuDNN's minimum
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        # The kernel returns the Bessel-corrected variance; Keras' moving average uses the
        # biased one, so a model trains (and is evaluated) the same with either layer.
        n = tf.cast(tf.size(inputs) // channels, tf.float32)
        variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return tf.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="cnnzoo")
class GroupedConv2D(layers.Conv2D):
    """Conv2D with `groups` > 1 as TF's grouped `conv2d` (oneDNN on CPU, cuDNN on GPU), not
    Keras' jit-compiled cluster: ResNeXt's grouped 3x3 on an (8, 8, 16) map, 8 groups, went from
    29.5 to ~1 ms per training step here. Same kernel shape, so weights load either way."""

    fast = True

    def convolution_op(self, inputs, kernel):
        if (not self.fast or self.groups == 1 or self.data_format != "channels_last"
                or not grouped_gradients_supported()):
            return super().convolution_op(inputs, kernel)
        return tf.nn.conv2d(inputs, kernel, strides=self.strides, padding=self.padding.upper(),
                            dilations=self.dilation_rate, data_format="NHWC")


@functools.cache
def grouped_gradients_supported() -> bool:
    """Whether TF's grouped `conv2d` has gradients here. Without oneDNN (TF_ENABLE_ONEDNN_OPTS=0,
    or TensorFlow imported before cnnzoo on a CPU without AVX-512) the CPU kernels raise
    "Gradients for grouped convolutions are not supported on CPU"; then Keras' slower grouped
    convolution, which trains everywhere, is used. Probed once, on the two gradient ops."""
    try:
        with tf.init_scope():  # eagerly, also when first called while a training step traces
            kernel, grad = tf.ones((3, 3, 2, 4)), tf.ones((1, 3, 3, 4))  # 4 channels, 2 groups
            tf.raw_ops.Conv2DBackpropInput(input_sizes=[1, 3, 3, 4], filter=kernel,
                                           out_backprop=grad, strides=[1, 1, 1, 1], padding="SAME")
            tf.raw_ops.Conv2DBackpropFilter(input=grad, filter_sizes=[3, 3, 2, 4],
                                            out_backprop=grad, strides=[1, 1, 1, 1], padding="SAME")
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        return False
    return True


def use_stock_kernels(model: keras.Model) -> int:
    """Switch every fast layer of `model` (nested models too) back to Keras' own computation;
    returns how many were switched. Call before the model's first training step."""
    switched = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (FusedBatchNormalization, GroupedConv2D)):
            layer.fast = False
            switched += 1
    return switched
