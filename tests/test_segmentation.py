"""Segmentation metrics against hand-counted cases, and the overlay figure."""

import numpy as np
import pytest

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


def test_overlay_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (3, 16, 16, 1), dtype=np.uint8)
    y = rng.integers(0, 3, (3, 16, 16))
    segmentation.overlay_figure(x, y, y, ["background", "a", "b"], tmp_path / "o.png", title="t")
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
