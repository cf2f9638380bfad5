"""Single-shot detection: grid targets, the YOLO v1 loss against a loop-by-loop reference,
decoding with non-max suppression, VOC average precision on a hand-worked case, the detector
builder and its errors."""

import numpy as np
import pytest

from cnnzoo.models import create_model, list_models
from cnnzoo.tasks import detection

GRID, BOXES, CLASSES = 4, 2, 3


def logit(p):
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def perfect_outputs(target: np.ndarray) -> np.ndarray:
    """Raw outputs whose first box in every object cell is the truth (confidence ~1), every other
    box confidence ~0, class logits 10 × one-hot."""
    n, s = target.shape[:2]
    out = np.zeros((n, s, s, BOXES * 5 + CLASSES), np.float32)
    out[..., 0:4] = logit(target[..., 1:5])
    out[..., 4] = np.where(target[..., 0] > 0, 12.0, -12.0)
    out[..., 9] = -12.0
    out[..., BOXES * 5:] = 10 * target[..., 5:]
    return out


def scene_boxes():
    """Two scenes (canvas 40) as scenes.visible_boxes rows: class, x0, y0, x1, y1, visible."""
    return np.array([[[0, 2, 2, 12, 14, 1.0], [2, 20, 18, 38, 36, 0.9], [1, 0, 0, 5, 5, 0.2]],
                     [[1, 10, 0, 30, 20, 1.0], [-1, -1, -1, -1, -1, -1], [-1] * 6]], np.float32)


def test_ground_truth_and_targets():
    truth = detection.ground_truth(scene_boxes(), 40, min_visible=0.5)
    assert [len(t) for t in truth] == [2, 1]  # the 20% visible item is hidden
    np.testing.assert_allclose(truth[0][0], [0, 0.05, 0.05, 0.3, 0.35])
    target = detection.encode(truth, GRID, CLASSES)
    assert target.shape == (2, GRID, GRID, 5 + CLASSES) and target[..., 0].sum() == 3
    # Box 1 of scene 0: centre (0.175, 0.2) of the image -> cell (row 0, col 0), offsets
    # (0.7, 0.8) within it, sqrt of its 0.25 × 0.3 size, class 0.
    np.testing.assert_allclose(target[0, 0, 0], [1, 0.7, 0.8, 0.5, np.sqrt(0.3), 1, 0, 0],
                               rtol=1e-6)
    # Two centres in one cell: the larger box keeps it.
    shared = [np.array([[0, 0.0, 0.0, 0.2, 0.2], [1, 0.05, 0.05, 0.15, 0.15]], np.float32)]
    assert detection.encode(shared, GRID, CLASSES)[0, 0, 0, 5:].tolist() == [1, 0, 0]


def reference_loss(y_true, y_pred, lc=5.0, ln=0.5, class_loss="squared"):
    """Section 2.2 of Redmon et al., written out cell by cell and box by box (`crossentropy`:
    the class term as − Σ p log p̂)."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    total = np.zeros(len(y_true))
    for n in range(len(y_true)):
        for r in range(GRID):
            for c in range(GRID):
                t, p = y_true[n, r, c], y_pred[n, r, c]
                preds = [sig(p[5 * b:5 * b + 5]) for b in range(BOXES)]

                def box(v):  # corners in cell units from offsets and sqrt sizes
                    return (v[0] - v[2] ** 2 * GRID / 2, v[1] - v[3] ** 2 * GRID / 2,
                            v[0] + v[2] ** 2 * GRID / 2, v[1] + v[3] ** 2 * GRID / 2)

                def iou(a, b):
                    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
                    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
                    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
                    return w * h / union
                ious = [iou(box(q[:4]), box(t[1:5])) for q in preds]
                best = int(np.argmax(ious))
                for b, q in enumerate(preds):
                    if t[0] and b == best:
                        total[n] += lc * np.sum((q[:4] - t[1:5]) ** 2) + (q[4] - ious[b]) ** 2
                    else:
                        total[n] += ln * q[4] ** 2
                if t[0]:
                    e = np.exp(p[5 * BOXES:] - p[5 * BOXES:].max())
                    if class_loss == "crossentropy":
                        total[n] -= np.sum(t[5:] * np.log(e / e.sum()))
                    else:
                        total[n] += np.sum((e / e.sum() - t[5:]) ** 2)
    return total


def test_yolo_loss_matches_the_papers_sum_written_out():
    target = detection.encode(detection.ground_truth(scene_boxes(), 40, 0.5), GRID, CLASSES)
    pred = np.random.default_rng(0).normal(size=(2, GRID, GRID, BOXES * 5 + CLASSES))
    loss = detection.YoloLoss(GRID, BOXES, reduction=None)
    np.testing.assert_allclose(np.asarray(loss(target, pred.astype(np.float32))),
                               reference_loss(target, pred), rtol=1e-4)
    assert np.asarray(loss(target, perfect_outputs(target))).max() < 0.01


def test_cross_entropy_class_term_matches_its_sum_written_out():
    target = detection.encode(detection.ground_truth(scene_boxes(), 40, 0.5), GRID, CLASSES)
    pred = np.random.default_rng(1).normal(size=(2, GRID, GRID, BOXES * 5 + CLASSES))
    loss = detection.YoloLoss(GRID, BOXES, class_loss="crossentropy", reduction=None)
    np.testing.assert_allclose(np.asarray(loss(target, pred.astype(np.float32))),
                               reference_loss(target, pred, class_loss="crossentropy"), rtol=1e-4)
    assert np.asarray(loss(target, perfect_outputs(target))).max() < 0.01
    assert detection.YoloLoss.from_config(loss.get_config()).class_loss == "crossentropy"
    with pytest.raises(ValueError, match="class_loss must be"):
        detection.YoloLoss(class_loss="hinge")


def test_perfect_outputs_decode_to_the_truth_and_score_ap_1():
    truth = detection.ground_truth(scene_boxes(), 40, 0.5)
    found = detection.decode(perfect_outputs(detection.encode(truth, GRID, CLASSES)), BOXES,
                             score_threshold=0.5, nms_iou=0.5)
    assert [len(f) for f in found] == [2, 1]
    np.testing.assert_allclose(found[1][0, 2:], truth[1][0, 1:], atol=1e-3)
    scored = detection.average_precision(found, truth, CLASSES)
    assert scored["map50"] == pytest.approx(1.0) and scored["ap"] == pytest.approx([1, 1, 1])


def test_average_precision_on_a_hand_worked_case():
    """One class, two true boxes; detections: a hit (0.9), a miss (0.8), a second detection of
    the first box (0.75, a duplicate: false positive) and a hit (0.7). Precision 1 up to recall
    0.5, then 2/4 at recall 1: AP = 0.5 × 1 + 0.5 × 0.5 = 0.75."""
    truth = [np.array([[0, 0, 0, 0.2, 0.2], [0, 0.5, 0.5, 0.9, 0.9]], np.float32)]
    found = [np.array([[0, 0.9, 0, 0, 0.2, 0.2], [0, 0.8, 0.3, 0, 0.4, 0.1],
                       [0, 0.75, 0.01, 0, 0.2, 0.21], [0, 0.7, 0.5, 0.5, 0.88, 0.9]], np.float32)]
    assert detection.average_precision(found, truth, 1)["map50"] == pytest.approx(0.75)
    assert detection.average_precision([found[0][:0]], truth, 2) == {"map50": 0.0, "ap": [0.0, None]}


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 1, 1], [0.05, 0, 1, 1], [2, 2, 3, 3]], np.float32)
    assert detection.nms(boxes, np.array([0.6, 0.9, 0.5]), 0.5).tolist() == [1, 2]


def test_detector_on_a_backbone_map():
    assert "yolo_v1" in list_models("detect") and "yolo_v1" not in list_models()
    model = create_model("yolo_v1", input_shape=(64, 64, 1), num_classes=10,
                         backbone_settings={"width": 0.25})
    assert model.output_shape == (None, 7, 7, 20)  # S×S×(B·5 + C), the paper's S = 7, B = 2
    assert model.get_layer("stage3_block3_out").output.shape[1] == 16  # resnet20's last map
    lenet = create_model("yolo_v1", input_shape=(64, 64, 1), num_classes=3, backbone="lenet5",
                         grid=3, boxes=1, layer="s4_pool")
    assert lenet.output_shape == (None, 3, 3, 8)
    with pytest.raises(ValueError, match="9×9 on a 64×64 input, smaller than the 10×10 grid"):
        create_model("yolo_v1", input_shape=(64, 64, 1), num_classes=3, backbone="lenet5",
                     grid=10)
    with pytest.raises(ValueError, match="detect.layer: lenet5 has no layer 'nope'"):
        create_model("yolo_v1", input_shape=(64, 64, 1), num_classes=3, backbone="lenet5",
                     layer="nope")


def test_scenes_without_boxes_are_refused(tmp_path):
    """A folder of image/mask pairs has no item boxes: the detection stages say so."""
    from cnnzoo import config
    from cnnzoo.stages.detect import _load
    from tests.conftest import ROOT

    np.savez(tmp_path / "train.npz", x=np.zeros((2, 8, 8, 1), np.uint8), y=np.zeros((2, 8, 8)))
    params = config.load(ROOT / "params.yaml")
    with pytest.raises(ValueError, match="train.npz has no item boxes: detection needs generated"):
        _load(params, str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="val.npz not found: run `dvc repro scenes`"):
        _load(params, str(tmp_path), "val")
