"""Segmentation metrics against hand-counted cases, and the overlay figure."""

import numpy as np
import pytest
from PIL import Image

from cnnzoo.tasks import segmentation


def test_confusion_iou_and_mean_iou_by_hand():
    y = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    p = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    cm = segmentation.confusion(y, p, 4)
    assert cm.sum() == 8 and cm[0, 0] == 2 and cm[0, 1] == 1 and cm[2, 0] == 1
    s = segmentation.scores(cm, ["bg", "a", "b", "never"])
    assert s["pixel_accuracy"] == pytest.approx(6 / 8)
    # IoU: bg 2 / (3 + 3 - 2) = 0.5; a 3 / (4 + 3 - 3) = 0.75; b 1 / (1 + 2 - 1) = 0.5
    assert s["classes"] == ["bg", "a", "b", "never"] and s["iou"] == [0.5, 0.75, 0.5, None]
    assert s["mean_iou"] == pytest.approx((0.5 + 0.75 + 0.5) / 3)


def test_predict_masks_takes_the_argmax_in_batches():
    x = np.random.default_rng(0).integers(0, 255, (7, 4, 4, 1), dtype=np.uint8)

    def logits(batch):  # class 1 where a pixel is brighter than half
        assert batch.dtype == np.float32 and batch.max() <= 1.0 and len(batch) <= 3
        return np.concatenate([0.5 * np.ones_like(batch), batch], axis=-1)

    masks = segmentation.predict_masks(logits, x, batch=3)
    np.testing.assert_array_equal(masks, (x[..., 0] / 255.0 > 0.5).astype(np.uint8))


def test_overlay_figure_shows_the_prediction_in_the_truths_colours(tmp_path):
    """Three rows (input, truth, prediction), a column per scene: a perfect prediction's row
    repeats the truth's pixels; another prediction changes only that row; the file is
    byte-reproducible (a DVC output)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (3, 16, 16, 1), dtype=np.uint8)
    y = np.zeros((3, 16, 16), np.int64)
    y[:, 4:12, 4:12] = 2  # one square item of class "b" per scene
    names = ["background", "a", "b"]
    for name, predicted in (("right", y), ("again", y), ("wrong", np.zeros_like(y))):
        segmentation.overlay_figure(x, y, predicted, names, tmp_path / f"{name}.png", title="t")
    assert (tmp_path / "right.png").read_bytes() == (tmp_path / "again.png").read_bytes()
    with Image.open(tmp_path / "right.png") as right, Image.open(tmp_path / "wrong.png") as wrong:
        a, b = np.asarray(right.convert("RGB")), np.asarray(wrong.convert("RGB"))
    rows = np.flatnonzero((a != b).any(axis=(1, 2)))
    height = a.shape[0]
    assert a.shape == b.shape and a.shape[1] > a.shape[0] * 0.6  # a wide grid of 3 columns
    assert len(rows) and rows.min() > height * 0.5  # only the bottom (prediction) row differs
