"""U-Net: the paper's configuration, the pipeline's small form, and the lecture's transposed
convolution example."""

import keras
import numpy as np
import pytest

from cnnzoo.deploy import convert
from cnnzoo.models import create_model, list_models
from cnnzoo.models.unet import LECTURE_SLIDE_RESULT, transposed_conv_example


def canonical_unet_parameters() -> int:
    """Figure 1 of Ronneberger et al. 2015 counted by hand: 3×3 convolutions with biases, 2×2
    up-convolutions halving the channels, a 1×1 convolution to 2 classes, 1 input channel."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    widths = [64, 128, 256, 512, 1024]
    total, cin = 0, 1
    for w in widths:  # contracting path and bottom
        total += conv(3, cin, w) + conv(3, w, w)
        cin = w
    for w in reversed(widths[:-1]):  # expanding path: up-conv, then concat doubles the input
        total += conv(2, 2 * w, w) + conv(3, 2 * w, w) + conv(3, w, w)
    return total + conv(1, 64, 2)


def test_canonical_configuration_matches_the_paper():
    model = create_model("unet", input_shape=(572, 572, 1), num_classes=2)
    assert model.output_shape == (None, 388, 388, 2)  # Figure 1: 572 in, 388 out
    assert model.get_layer("bottom_relu2").output.shape[1:] == (28, 28, 1024)
    assert model.count_params() == canonical_unet_parameters() == 31_030_658


def test_small_form_keeps_the_size_round_trips_and_converts(tmp_path):
    model = create_model("unet", input_shape=(32, 32, 1), num_classes=5, depth=2, width=4,
                         padding="same", batch_norm=True)
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 32, 32, 5) and np.isfinite(y).all()
    model.save(tmp_path / "u.keras")
    again = keras.models.load_model(tmp_path / "u.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), y, rtol=1e-4, atol=1e-4)
    lite = convert.LiteModel(convert.convert(model, "float32"))
    np.testing.assert_allclose(lite.logits(x[0]), y[0], rtol=1e-3, atol=1e-3)


def test_unet_is_a_segmentation_model_not_a_classifier():
    assert "unet" in list_models("segment") and "unet" not in list_models()
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 8"):
        create_model("unet", input_shape=(60, 60, 1), num_classes=3, depth=3, padding="same")
    with pytest.raises(ValueError, match="padding must be"):
        create_model("unet", input_shape=(64, 64, 1), num_classes=3, padding="full")


def test_encoder_form_skips_the_classifiers_maps_and_takes_its_weights(tmp_path):
    """TernausNet-style: the contracting path is VGG-11's, a skip connection from its last map
    at each resolution; a saved classifier's layers are copied in by name."""
    from cnnzoo.training.backbones import copy_matching

    vgg = {"width": 0.125, "fc_units": 16, "batch_norm": True}
    model = create_model("unet", input_shape=(32, 32, 1), num_classes=4, depth=3, width=4,
                         padding="same", batch_norm=True, encoder="vgg11", encoder_settings=vgg)
    assert model.output_shape == (None, 32, 32, 4)
    for level, source in enumerate(["block1_conv1_relu", "block2_conv1_relu",
                                    "block3_conv2_relu"], start=1):
        assert model.get_layer(f"up{level}_concat").input[0] is model.get_layer(source).output
    assert model.get_layer("up3_upconv").input is model.get_layer("block4_conv2_relu").output
    assert "block5_conv1" not in [lyr.name for lyr in model.layers]  # below the bottom: unused
    classifier = create_model("vgg11", input_shape=(32, 32, 1), num_classes=5, **vgg)
    classifier.save(tmp_path / "vgg.keras")
    assert copy_matching(model, str(tmp_path / "vgg.keras")) == 12  # 6 convolutions, 6 BN
    for name in ("block1_conv1", "block4_conv2_bn"):
        for a, b in zip(model.get_layer(name).get_weights(),
                        classifier.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"resnet20 has no map of size \[4\].*lower the depth"):
        create_model("unet", input_shape=(32, 32, 1), num_classes=4, depth=3, padding="same",
                     encoder="resnet20", encoder_settings={"width": 0.25})


def test_lecture_transposed_convolution_example():
    stride1 = transposed_conv_example(1)
    np.testing.assert_array_equal(stride1, [[6, 21, 12, 0], [11, 20, 60, 20],
                                            [15, 22, 15, 35], [4, 22, 11, 5]])
    # The slide's first two rows are right, its last two are not.
    slide = np.array(LECTURE_SLIDE_RESULT)
    np.testing.assert_array_equal(stride1[:2], slide[:2])
    assert (stride1[2:] != slide[2:]).any()
    stride2 = transposed_conv_example(2)
    assert stride2.shape == (5, 5)
    np.testing.assert_array_equal(stride2[:2], [[6, 21, 12, 0, 0], [9, 3, 21, 0, 0]])
    np.testing.assert_array_equal(stride2, [[6, 21, 12, 0, 0], [9, 3, 21, 0, 0],
                                            [14, 13, 17, 35, 20], [3, 1, 22, 5, 35],
                                            [4, 2, 21, 10, 5]])
    # No stride or crop of a standard transposed convolution gives the slide's 4x4 result.
    for stride in (1, 2, 3):
        out = transposed_conv_example(stride)
        for top in range(out.shape[0] - 3):
            for left in range(out.shape[1] - 3):
                assert not np.array_equal(out[top:top + 4, left:left + 4], slide)


def test_cli_prints_the_example_and_the_slide_note(capsys):
    from cnnzoo.cli import main

    assert main(["tconv"]) == 0
    out = capsys.readouterr().out
    assert "stride 1, valid padding -> 4x4" in out and "   15  22  15  35" in out
    assert "[15 23 24 35]" in out
