"""The fast training kernels compute what the stock Keras layers compute: outputs, gradients and
moving statistics, on the batches a training step sees."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnzoo.models.kernels import FusedBatchNormalization, GroupedConv2D, use_stock_kernels
from cnnzoo.models.layers import LocalResponseNormalization


def _step(layer, x):
    """Output, gradients (input and weights) and post-step weights of one training call."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.sin(y))  # a non-trivial upstream gradient
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return [y.numpy()] + [g.numpy() for g in grads] + [w.numpy() for w in layer.weights]


def _pair(make, shape):
    fast, stock = make(), make()
    fast.build(shape)
    stock.build(shape)
    stock.set_weights(fast.get_weights())
    stock.fast = False
    return fast, stock


@pytest.mark.parametrize("kwargs", [{}, {"center": False, "scale": False},
                                    {"momentum": 0.9, "epsilon": 1e-5}])
def test_fused_batchnorm_matches_keras(kwargs):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(6, 5, 4, 3)) * 3 + 1).astype(np.float32)
    fast, stock = _pair(lambda: FusedBatchNormalization(**kwargs), x.shape)
    for _ in range(2):  # the second call sees the first call's moving statistics
        for a, b in zip(_step(fast, x), _step(stock, x), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(fast(x, training=False), stock(x, training=False), atol=1e-6)


@pytest.mark.parametrize("stride,groups", [(1, 4), (2, 2)])
def test_grouped_conv_matches_keras(stride, groups):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 7, 7, 8)).astype(np.float32)
    fast, stock = _pair(lambda: GroupedConv2D(12, 3, strides=stride, padding="same",
                                              groups=groups), x.shape)
    for a, b in zip(_step(fast, x), _step(stock, x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_grouped_conv_trains_where_tf_has_no_grouped_gradient(monkeypatch):
    """On a CPU whose kernels cannot back-propagate TF's grouped conv2d, the layer falls back to
    Keras' own computation: same output, and it trains."""
    from cnnzoo.models import kernels

    x = np.random.default_rng(3).normal(size=(2, 5, 5, 4)).astype(np.float32)
    layer = GroupedConv2D(4, 3, padding="same", groups=2)
    layer.build(x.shape)
    fast = layer(x).numpy()
    monkeypatch.setattr(kernels, "grouped_gradients_supported", lambda: False)
    out, dx, dkernel, _bias, *_ = _step(layer, x)
    np.testing.assert_allclose(out, fast, rtol=1e-4, atol=1e-4)
    assert np.abs(dx).sum() > 0 and np.abs(dkernel).sum() > 0


def test_this_cpu_trains_grouped_convolutions_with_tf_kernels():
    """cnnzoo turns oneDNN on before TensorFlow loads (cnnzoo/__init__.py): without it an
    AVX2-only CPU has no grouped-convolution gradient and ResNeXt falls back to the slow path."""
    import os

    from cnnzoo.models import kernels

    if os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0":
        pytest.skip("TF_ENABLE_ONEDNN_OPTS=0 set by hand: TF's CPU kernels may lack it")
    assert kernels.grouped_gradients_supported()


def test_grouped_gradient_probe_runs_when_first_asked_inside_a_traced_step():
    from cnnzoo.models import kernels

    kernels.grouped_gradients_supported.cache_clear()
    model = keras.Sequential([keras.Input((5, 5, 4)), GroupedConv2D(4, 3, groups=2)])
    model.compile("sgd", "mse")
    model.train_on_batch(np.ones((2, 5, 5, 4), np.float32), np.zeros((2, 3, 3, 4), np.float32))
    assert kernels.grouped_gradients_supported.cache_info().currsize == 1


def test_lrn_training_kernel_matches_its_inference_graph():
    rng = np.random.default_rng(2)
    x = np.abs(rng.normal(size=(2, 3, 3, 7)) * 20).astype(np.float32)  # post-ReLU activations
    lrn = LocalResponseNormalization()
    np.testing.assert_allclose(lrn(x, training=True), lrn(x, training=False), rtol=1e-5)
    x = tf.constant(x)
    grads = []
    for training in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(lrn(x, training=training)))
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(*grads, rtol=1e-4, atol=1e-6)


def test_stock_switch_reaches_nested_layers():
    inner = keras.Sequential([keras.Input((4, 4, 4)), GroupedConv2D(4, 3, groups=2),
                              FusedBatchNormalization()])
    outer = keras.Sequential([keras.Input((4, 4, 4)), inner, FusedBatchNormalization()])
    assert use_stock_kernels(outer) == 3
    assert not any(getattr(lyr, "fast", False) for lyr in outer._flatten_layers())
