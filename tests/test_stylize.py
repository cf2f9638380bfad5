"""Style transfer: the Gram matrix against its definition, the losses falling while the image
is optimised (colour and grey networks), and `cnnzoo stylize` writing the PNG."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cnnzoo import cli
from cnnzoo.models import create_model
from cnnzoo.tasks import stylize


def test_gram_is_the_position_averaged_outer_product():
    f = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    ref = np.zeros((2, 5, 5))
    for b in range(2):
        for i in range(3):
            for j in range(4):
                ref[b] += np.outer(f[b, i, j], f[b, i, j])
    np.testing.assert_allclose(stylize.gram(tf.constant(f)).numpy(), ref / 12, rtol=1e-5)


def pictures(size=32):
    """A content picture (a bright disc on a ramp) and a style picture (coloured stripes)."""
    yy, xx = np.mgrid[:size, :size] / size
    disc = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2 < 0.1).astype(np.float32)
    content = np.stack([0.2 + 0.6 * disc, 0.3 * xx + 0.5 * disc, 0.4 * yy], -1)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * (xx + yy))
    style = np.stack([stripes, 1 - stripes, 0.5 * np.ones_like(stripes)], -1)
    return content.astype(np.float32), style.astype(np.float32)


@pytest.mark.parametrize("channels", [3, 1])
def test_style_loss_falls(channels):
    keras_vgg = create_model("vgg11", input_shape=(32, 32, channels), num_classes=3, width=0.125,
                             fc_units=8, batch_norm=channels == 1)
    extractor = stylize.chain_extractor(keras_vgg)
    assert len(extractor.model.outputs) == 6  # content + five style layers
    content, style = pictures()
    image, history = stylize.stylize(extractor, content, style, steps=40, learning_rate=0.03,
                                     seed=1, progress=False)
    assert image.shape == content.shape and 0 <= image.min() and image.max() <= 1
    assert history[-1]["style"] < 0.5 * history[0]["style"]
    assert history[-1]["total"] < history[0]["total"]
    again, _ = stylize.stylize(extractor, content, style, steps=3, seed=1, progress=False)
    same, _ = stylize.stylize(extractor, content, style, steps=3, seed=1, progress=False)
    np.testing.assert_array_equal(again, same)  # seeded


def test_cli_writes_the_stylised_png(tmp_path, capsys):
    content, style = pictures()
    for name, img in (("content.png", content), ("style.png", style)):
        Image.fromarray(np.uint8(img * 255)).save(tmp_path / name)
    model = create_model("vgg11", input_shape=(32, 32, 1), num_classes=3, width=0.125,
                         fc_units=8, batch_norm=True)
    model.save(tmp_path / "vgg.keras")
    out = tmp_path / "out.png"
    assert cli.main(["stylize", str(tmp_path / "content.png"), str(tmp_path / "style.png"),
                     "-o", str(out), "--weights", str(tmp_path / "vgg.keras"), "--size", "32",
                     "--steps", "5"]) == 0
    with Image.open(out) as img:
        assert img.size == (32, 32) and img.mode == "RGB"
    assert "style loss" in capsys.readouterr().out
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert cli.main(["stylize", str(tmp_path / "bad.png"), str(tmp_path / "style.png"), "-o",
                     str(out), "--weights", str(tmp_path / "vgg.keras")]) == 1
    assert "bad.png: not a readable image" in capsys.readouterr().err
