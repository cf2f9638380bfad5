"""The cost calculator reproduces the lecture's worked examples and the papers' totals."""

import keras
import numpy as np
import pytest
from keras import layers

from cnnzoo.models import create_model
from cnnzoo.models.cost import conv_output_size, model_cost, total_macs
from cnnzoo.models.layers import LocalResponseNormalization, ZeroPadShortcut


def test_conv_output_size_formula():
    assert conv_output_size(6, 3) == 4
    assert conv_output_size(227, 11, s=4) == 55
    assert conv_output_size(28, 5, p=2) == 28
    assert conv_output_size(7, 3, s=2) == 3
    with pytest.raises(ValueError):
        conv_output_size(2, 5)


def test_inception_5x5_branch_naive_vs_bottleneck():
    x = keras.Input((28, 28, 192))
    naive = keras.Model(x, layers.Conv2D(32, 5, padding="same")(x))
    assert total_macs(naive) == 120_422_400
    reduced = layers.Conv2D(16, 1)(x)
    bottleneck = keras.Model(x, layers.Conv2D(32, 5, padding="same")(reduced))
    assert total_macs(bottleneck) == 12_443_648


def test_depthwise_separable_example():
    x = keras.Input((6, 6, 3))
    assert total_macs(keras.Model(x, layers.Conv2D(5, 3)(x))) == 2_160
    separable = keras.Model(x, layers.Conv2D(5, 1)(layers.DepthwiseConv2D(3)(x)))
    assert total_macs(separable) == 672
    assert total_macs(keras.Model(x, layers.SeparableConv2D(5, 3)(x))) == 672


def test_per_layer_table_and_nested_models():
    model = create_model("lenet5", input_shape=(32, 32, 1), num_classes=10)
    rows = {r.name: r for r in model_cost(model)}
    assert rows["c1_conv"].output_shape == (28, 28, 6) and rows["c1_conv"].macs == 117_600
    assert sum(r.params for r in rows.values()) == 61_706
    outer_in = keras.Input((32, 32, 1))
    wrapped = keras.Model(outer_in, model(outer_in))
    assert total_macs(wrapped) == total_macs(model)


@pytest.mark.slow
@pytest.mark.parametrize("name,size,published,tolerance", [
    ("mobilenet_v1", 224, 569e6, 0.02),      # Howard et al. Table 1
    ("mobilenet_v2", 224, 300e6, 0.02),      # Sandler et al. Table 3
    ("vgg16", 224, 15.5e9, 0.02),
    ("resnet50", 224, 4.09e9, 0.02),        # torchvision's reference (v1.5 stride placement)
    ("resnext50_32x4d", 224, 4.23e9, 0.02),
    ("densenet121", 224, 2.83e9, 0.02),
    ("resnet18", 224, 1.81e9, 0.02),
    # The paper quotes a rounded "1.5 billion multiply-adds" budget; Table 1 sums to 1.58G.
    ("googlenet", 224, 1.5e9, 0.06),
])
def test_canonical_macs(name, size, published, tolerance):
    macs = total_macs(create_model(name, input_shape=(size, size, 3), num_classes=1000))
    assert abs(macs - published) / published < tolerance


@pytest.mark.parametrize("name,published", [("resnet20", 41e6), ("resnet56", 125e6)])
def test_cifar_resnet_macs(name, published):  # He et al. Table 6 ("FLOPs" = mult-adds)
    macs = total_macs(create_model(name, input_shape=(32, 32, 3), num_classes=10))
    assert abs(macs - published) / published < 0.02


def test_lrn_matches_brute_force_reference():
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 7)).astype(np.float32) * 10
    n, k, alpha, beta = 5, 2.0, 1e-4, 0.75
    ref = np.empty_like(x)
    for c in range(x.shape[-1]):
        lo, hi = max(0, c - n // 2), min(x.shape[-1], c + n // 2 + 1)
        ref[..., c] = x[..., c] / (k + alpha / n * np.sum(x[..., lo:hi] ** 2, axis=-1)) ** beta
    out = np.asarray(LocalResponseNormalization(depth=n, k=k, alpha=alpha, beta=beta)(x))
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_zero_pad_shortcut_subsamples_and_pads():
    x = np.arange(1 * 4 * 4 * 2, dtype=np.float32).reshape(1, 4, 4, 2)
    y = np.asarray(ZeroPadShortcut(6, 2)(x))
    assert y.shape == (1, 2, 2, 6)
    np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    assert not y[..., :2].any() and not y[..., 4:].any()
