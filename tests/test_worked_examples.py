"""Every worked example of the five lecture decks, computed by the project's own layers and tools.
Where a slide's arithmetic slips, the consistent figure is asserted and the slip named
(docs/zoo.md's "The lectures' numbers" lists them with the parameter claims)."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from cnnzoo.files import read_csv
from cnnzoo.models import create_model
from cnnzoo.models.cost import conv_output_size, model_cost
from tests.conftest import ROOT
from tests.test_models import CANONICAL, trainable


def conv(image, kernel, *, bias=0.0, strides=1, padding="valid"):
    """A Keras Conv2D (cross-correlation, as every deck defines convolution) with set weights.
    image: H×W×C_in, kernel: f×f×C_in (one output channel)."""
    image = np.asarray(image, np.float32)
    kernel = np.asarray(kernel, np.float32)
    if image.ndim == 2:
        image, kernel = image[..., None], kernel[..., None]
    layer = layers.Conv2D(1, kernel.shape[0], strides=strides, padding=padding)
    layer.build((None, *image.shape))
    layer.set_weights([kernel[..., None], np.array([bias], np.float32)])
    return np.asarray(layer(image[None]))[0, ..., 0]


def test_seed000_1x1_convolution_scales_each_pixel():
    image = [[3, 0, 1], [1, 5, 8], [2, 7, 2]]
    np.testing.assert_array_equal(conv(image, [[2]]), [[6, 0, 2], [2, 10, 16], [4, 14, 4]])


def test_seed001_convolution_of_a_5x5_image():
    image = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
    kernel = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    # The slide shows the first value (4); the rest is the same sum slid over the image.
    np.testing.assert_array_equal(conv(image, kernel), [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_seed001_three_channel_convolution_with_bias():
    """The RGB example: per-channel sums 308, -498 and 164, plus bias 1, give -25 at the first
    position of the zero-padded image (the slide shows its top-left 3×3 of each channel)."""
    red = [[0, 0, 0], [0, 156, 155], [0, 153, 154]]
    green = [[0, 0, 0], [0, 167, 166], [0, 164, 165]]
    blue = [[0, 0, 0], [0, 163, 162], [0, 160, 161]]
    kernels = [[[-1, -1, 1], [0, 1, -1], [0, 1, 1]], [[1, 0, 0], [1, -1, -1], [1, 0, -1]],
               [[0, 1, 1], [0, 1, 0], [1, -1, 1]]]
    per_channel = [conv(c, k)[0, 0] for c, k in zip((red, green, blue), kernels, strict=True)]
    assert per_channel == [308, -498, 164]
    image, kernel = np.stack([red, green, blue], -1), np.stack(kernels, -1)
    assert conv(image, kernel, bias=1.0)[0, 0] == -25


def test_seed001_fully_connected_weights_of_a_colour_image():
    """500 units on a flattened 64×64×3 image: 12,288 × 500 = 6,144,000 weights (and as many
    multiplies per image), as the cost calculator counts them."""
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, layers.Dense(500)(layers.Flatten()(inputs)))
    dense = [row for row in model_cost(model) if row.params]
    assert [(r.params, r.macs) for r in dense] == [(6_144_000 + 500, 6_144_000)]


def test_seed002_output_sizes_of_the_63_pixel_example():
    """'Same' f = 3, s = 1, p = 1 keeps 63 (63×63×8 = 31,752 values). 'Valid' f = 3, s = 2 gives
    ⌊(63 − 3)/2⌋ + 1 = 31, so 31×31×8 = 7,688 values: the slide's 30×30×8 = 7,200 is a slip."""
    assert conv_output_size(63, 3, s=1, p=1) == 63 and conv_output_size(63, 3, s=2) == 31
    x = np.zeros((1, 63, 63, 1), np.float32)
    same, valid = layers.Conv2D(8, 3, padding="same")(x), layers.Conv2D(8, 3, strides=2)(x)
    assert same.shape == (1, 63, 63, 8) and np.prod(same.shape) == 31_752
    assert valid.shape == (1, 31, 31, 8) and np.prod(valid.shape) == 7_688 != 7_200


def test_seed002_first_network_has_392460_parameters():
    """32×32×1 → valid 5×5 conv, 10 filters (250 weights + 10 biases) → 2×2/2 max pool (no
    parameters) → FC 200. The slide counts 13×13×10 = 1,690 pooled values and 338,460 parameters;
    32 → 28 → 14 gives 14×14×10 = 1,960 and 1,960 × 200 + 200 = 392,200 in the FC layer."""
    model = create_model("first_cnn", input_shape=(32, 32, 1), num_classes=200)
    rows = {r.name: r for r in model_cost(model)}
    assert rows["conv1"].output_shape == (28, 28, 10) and rows["conv1"].params == 260
    assert rows["pool1"].output_shape == (14, 14, 10) and rows["pool1"].params == 0
    assert rows["features"].output_shape == (1_960,)
    assert rows["head"].params == 392_200
    assert trainable(model) == 392_460 != 338_460


def test_seed003_max_pool_gradient_reaches_only_the_maximum():
    x = tf.constant([[3, 2, 0, 0], [0, 7, 1, 3], [5, 2, 3, 0], [0, 9, 2, 3]], tf.float32)
    x = x[None, :, :, None]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layers.MaxPooling2D(2)(x)
        total = tf.reduce_sum(y)
    np.testing.assert_array_equal(y[0, ..., 0], [[7, 3], [9, 3]])
    grad = tape.gradient(total, x)[0, ..., 0].numpy()
    # One 1 per 2×2 window, at its maximum. The bottom-right window holds 3 twice; TF's pooling
    # gradient goes to the first in row-major order, so exactly one of the two receives it.
    np.testing.assert_array_equal(grad, [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]])


def test_seed003_alexnet_table_maps():
    """The deep-learning course lecture's AlexNet table: 55, 27, 27, 13, 13, 13, 13, 6 and a
    9,216-wide FC6 input at 227×227×3 (a narrow build: widths do not change the maps)."""
    model = create_model("alexnet", input_shape=(227, 227, 3), num_classes=1000, width=0.125)
    maps = [model.get_layer(n).output.shape[1] for n in
            ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")]
    assert maps == [55, 27, 27, 13, 13, 13, 13, 6]
    assert model.get_layer("flatten").output.shape[-1] == 6 * 6 * 32  # 6×6×256 at width 1


def test_seed004_alexnet_alike_table():
    """The using-CNNs lecture's table, row by row; its "Flatten → 1024" is 256×4×4 = 4,096 (see
    the builder)."""
    model = create_model("alexnet_cifar", input_shape=(32, 32, 3), num_classes=10)
    shapes = {n: model.get_layer(n).output.shape[1:] for n in
              ("conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "flatten", "fc4",
               "features", "head")}
    assert shapes == {"conv1": (32, 32, 64), "pool1": (16, 16, 64), "conv2": (16, 16, 128),
                      "pool2": (8, 8, 128), "conv3": (8, 8, 256), "pool3": (4, 4, 256),
                      "flatten": (4_096,), "fc4": (512,), "features": (512,), "head": (10,)}
    assert [model.get_layer(f"conv{i}").kernel_size for i in (1, 2, 3)] == [(7, 7), (5, 5), (3, 3)]


def test_seed004_resnet_architecture():
    """Aggressive stem (each side cut by 75%, 64 filters), 3 residual blocks at each of 64, 128,
    256 and 512 filters, global average pooling and one softmax layer."""
    model = create_model("resnet26", input_shape=(224, 224, 3), num_classes=1000)
    assert model.get_layer("stem_pool").output.shape[1:] == (56, 56, 64)
    for stage, filters in enumerate((64, 128, 256, 512), start=1):
        blocks = {lyr.name.split("_")[1] for lyr in model.layers
                  if lyr.name.startswith(f"stage{stage}_block")}
        assert blocks == {"block1", "block2", "block3"}
        assert model.get_layer(f"stage{stage}_block3_out").output.shape[-1] == filters
    assert model.get_layer("features").__class__.__name__ == "GlobalAveragePooling2D"
    weight_layers = [lyr for lyr in model.layers if hasattr(lyr, "kernel")
                     and "shortcut" not in lyr.name]
    assert len(weight_layers) == 26


@pytest.mark.slow
@pytest.mark.parametrize("name,share", [("alexnet", 0.94), ("vgg16", 0.89)])
def test_seed002_fully_connected_layers_hold_about_90_percent(name, share):
    """"An estimate says that the last FC layers contain 90% of parameters"."""
    model = create_model(name, input_shape=(227 if name == "alexnet" else 224,) * 2 + (3,),
                         num_classes=1000)
    dense = sum(trainable_of(lyr) for lyr in model.layers if isinstance(lyr, layers.Dense))
    assert round(dense / trainable(model), 2) == share


def trainable_of(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


# The decks' parameter and size claims (lecture, claim) next to the registry's exact counts; the
# counts themselves are checked by tests/test_models.py::test_canonical_parameter_counts.
CLAIMS = [
    ("LeNet-5", "lenet5", "convnet examples", 60_000, 61_706),
    ("AlexNet", "alexnet", "CNN basics, convnet examples", 60_000_000, CANONICAL["alexnet"]),
    ("VGG-16", "vgg16", "CNN basics, convnet examples", 138_000_000,
     CANONICAL["vgg16"]),
    ("GoogLeNet", "googlenet", "convnet examples", 4_000_000, CANONICAL["googlenet"]),
]


def claims_rows() -> list[str]:
    rows = []
    for label, key, lecture, claim, exact in CLAIMS:
        rows.append(f"| {label} | `{key}` | {lecture} | {claim:,} | {exact:,} | "
                    f"{(exact - claim) / claim:+.1%} |")
    return rows


def test_the_docs_parameter_claims_table_matches_the_counts():
    zoo = (ROOT / "docs" / "zoo.md").read_text()
    for row in claims_rows():
        assert row in zoo, f"docs/zoo.md's claims table lacks or misstates: {row}"


def test_the_decks_sizes_are_float32_weights_in_mib_of_the_measured_networks():
    """The decks' MB (VGG-16 528, ResNet-152 230, MobileNet ≤ 16) are 4 bytes per parameter in
    MiB of the networks `make sizes` built (reports/sizes.csv, committed with dvc.lock), which
    docs/zoo.md says next to each claim."""
    zoo = (ROOT / "docs" / "zoo.md").read_text()
    measured = {r["model"]: r for r in read_csv(ROOT / "reports" / "sizes.csv")}
    for key, mib in (("vgg16", 528), ("resnet152", 230), ("mobilenet_v1", 16)):
        assert round(int(measured[key]["params"]) * 4 / 2**20) == mib, key
        assert re.search(rf"`{key}`[^\n]*{mib} MiB", zoo), key
