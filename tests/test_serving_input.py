"""The one pre-processing of `cnnzoo predict` and the MLflow model (cnnzoo/data/serving_input.py):
grey or colour, any size, uint8 or float, brought to model.json's input as training images were."""

import numpy as np
import pytest
from PIL import Image

from cnnzoo.data.serving_input import InputShapeError, as_batch, border_brightness, resize, to_model_input

CARD = {"input": {"shape": [32, 32, 1], "fit": "pad", "source_size": [28, 28]}}


def test_grey_uint8_at_the_source_size_is_scaled_and_padded_like_training_images():
    img = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    out = to_model_input(img, CARD)
    assert out.shape == (1, 32, 32, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 2:30, 2:30, 0], img / 255.0, atol=1e-6)
    assert out[0, :2].max() == 0 and out[0, :, 30:].max() == 0
    # A batch of grey images (N, H, W) and the same as floats in [0, 1] give the same input.
    batch = np.stack([img, img[::-1]])
    np.testing.assert_allclose(to_model_input(batch, CARD)[0], out[0])
    np.testing.assert_allclose(to_model_input(batch / 255.0, CARD), to_model_input(batch, CARD),
                               atol=1e-6)


def test_colour_and_other_sizes_become_the_models_input():
    rgb = np.zeros((56, 56, 3), np.uint8)
    rgb[..., 0] = 255  # pure red: luma 0.299
    out = to_model_input(rgb, CARD)
    assert out.shape == (1, 32, 32, 1)
    np.testing.assert_allclose(out[0, 2:30, 2:30], 0.299, atol=1e-5)
    rgba = np.concatenate([rgb, np.full((56, 56, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_allclose(to_model_input(rgba[None], CARD), out)
    colour_card = {"input": {"shape": [32, 32, 3], "fit": "resize"}}
    grey = np.full((1, 20, 40, 1), 0.5, np.float32)
    np.testing.assert_allclose(to_model_input(grey, colour_card), 0.5, atol=1e-6)
    # Already the model's input (the pyfunc's earlier contract): passed as it is.
    ready = np.random.default_rng(1).random((3, 32, 32, 1), dtype=np.float32)
    np.testing.assert_array_equal(to_model_input(ready, CARD), ready)


def test_resize_matches_pils_antialiased_bilinear():
    img = np.random.default_rng(2).integers(0, 256, (60, 45), dtype=np.uint8)
    ours = resize(img[None, ..., None].astype(np.float32), 28, 21)[0, ..., 0]
    pil = np.asarray(Image.fromarray(img).resize((21, 28), Image.BILINEAR), np.float32)
    assert np.abs(ours - pil).mean() < 1.5  # grey levels of 255


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 28, 28, 1)), np.zeros((4, 28, 28, 2)),
                                 np.array([["a"]], dtype=object), np.zeros((0, 28, 28))])
def test_input_that_is_not_images_fails_in_one_line_naming_its_shape(bad):
    with pytest.raises(InputShapeError) as err:
        to_model_input(bad, CARD)
    assert str(bad.shape) in str(err.value) and "\n" not in str(err.value)


def test_border_brightness_tells_light_from_dark_backgrounds():
    dark = np.zeros((1, 28, 28, 1), np.float32)
    dark[:, 8:20, 8:20] = 1.0
    assert border_brightness(dark)[0] == 0.0
    assert border_brightness(1.0 - dark)[0] == 1.0
    assert as_batch(np.uint8([[255]]), 1).tolist() == [[[[1.0]]]]
