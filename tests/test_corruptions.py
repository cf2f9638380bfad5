"""The corruption suite: deterministic, in range, and worse at each severity."""

import numpy as np
import pytest

from cnnzoo.tasks import corruptions


@pytest.fixture(scope="module")
def images():
    """Textured items (smoothed noise) on black, padded like the pipeline's 28 -> 32 images."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    items = ndimage.gaussian_filter(rng.random((12, 20, 16)), sigma=(0, 1.2, 1.2))
    items = (items - items.min()) / (items.max() - items.min())
    x = np.zeros((12, 32, 32, 1), np.float32)
    x[:, 6:26, 8:24, 0] = 0.2 + 0.8 * items
    return x


@pytest.mark.parametrize("name", list(corruptions.CORRUPTIONS))
def test_each_corruption_is_deterministic_in_range_and_grows(images, name):
    again = corruptions.corrupt(images, name, 2, seed=3)
    assert np.array_equal(again, corruptions.corrupt(images, name, 2, seed=3))
    distances = []
    for s in corruptions.SEVERITIES:
        out = corruptions.corrupt(images, name, s, seed=3)
        assert out.shape == images.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1
        distances.append(float(np.abs(out - images).mean()))
    assert 0 < distances[0] < distances[1] < distances[2], distances


def test_colour_images_keep_their_channels(images):
    rgb = np.repeat(images, 3, axis=-1)
    for name in corruptions.CORRUPTIONS:
        out = corruptions.corrupt(rgb, name, 1)
        assert out.shape == rgb.shape
        if name not in ("noise",):  # grey in, grey out (noise is drawn per channel)
            assert np.allclose(out[..., 0], out[..., 2], atol=1e-6), name


def test_seeds_differ_where_randomness_is_used(images):
    assert not np.array_equal(corruptions.corrupt(images, "noise", 1, seed=0),
                              corruptions.corrupt(images, "noise", 1, seed=1))
    assert np.array_equal(corruptions.corrupt(images, "blur", 1, seed=0),
                          corruptions.corrupt(images, "blur", 1, seed=1))


def test_inversion_at_full_severity_is_the_negative(images):
    assert np.allclose(corruptions.corrupt(images, "inversion", 3), 1 - images)


def test_bad_names_and_severities_say_what_is_known(images):
    with pytest.raises(ValueError, match="known: noise, blur"):
        corruptions.corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity 4"):
        corruptions.corrupt(images, "blur", 4)
