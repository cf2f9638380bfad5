"""Single-shot detection (YOLO v1, Redmon et al. 2016): grid targets from boxes, the paper's
sum-squared loss, decoding with non-max suppression, average precision and the figure.

Grid target of a cell (S×S×(5 + C)): object flag, the centre of the box it is responsible for
as offsets within the cell, √w and √h relative to the image, the one-hot class. A box belongs to
the cell holding its centre; when two centres share a cell the larger box keeps it (the paper's
one-class-per-cell limit).

Loss (section 2.2), per image, with 1obj_ij = box predictor j of cell i is responsible (the one
of the cell's B predictions with the highest IoU with the truth):

  λcoord Σ 1obj_ij [(x − x̂)² + (y − ŷ)² + (√w − √ŵ)² + (√h − √ĥ)²]
  + Σ 1obj_ij (C − Ĉ)² + λnoobj Σ 1noobj_ij Ĉ² + Σ_i 1obj_i Σ_c (p(c) − p̂(c))²

with C = IoU(prediction, truth) as the paper's confidence target, λcoord = 5, λnoobj = 0.5.
`class_loss="crossentropy"` replaces the last term's squares with − Σ_c p(c) log p̂(c), the loss
classifiers train with (YOLO v3 and later use its per-class logistic form): as p̂ of the true class
goes to 0, the squares' gradient through the softmax vanishes and cross-entropy's does not.
Predictions are squashed as in YOLO v2 (sigmoid offsets, √w, √h and confidence; softmax class
probabilities) so every term stays in [0, 1]; the paper used linear outputs. A detection's score
is confidence × class probability, the paper's class-specific confidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from cnnzoo.data.serving_input import to_unit
from cnnzoo.training.loop import Objective


def ground_truth(boxes: np.ndarray, canvas: int, min_visible: float) -> list[np.ndarray]:
    """Per image, (k, 5) rows (class, x0, y0, x1, y1) in [0, 1] of the boxes whose item shows
    at least `min_visible` of its pixels (scenes.visible_boxes rows)."""
    keep = (boxes[..., 0] >= 0) & (boxes[..., 5] >= min_visible)
    return [np.c_[b[k, :1], b[k, 1:5] / canvas].astype(np.float32) for b, k in zip(boxes, keep,
                                                                                      strict=True)]


def encode(truth: Sequence[np.ndarray], grid: int, n_classes: int) -> np.ndarray:
    """(N, S, S, 5 + C) float32 grid targets of the `ground_truth` boxes."""
    target = np.zeros((len(truth), grid, grid, 5 + n_classes), np.float32)
    area = np.zeros((len(truth), grid, grid), np.float32)
    for n, rows in enumerate(truth):
        for cls, x0, y0, x1, y1 in rows:
            cx, cy, w, h = (x0 + x1) / 2 * grid, (y0 + y1) / 2 * grid, x1 - x0, y1 - y0
            col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
            if w * h <= area[n, row, col]:
                continue
            area[n, row, col] = w * h
            target[n, row, col, :5] = (1.0, cx - col, cy - row, np.sqrt(w), np.sqrt(h))
            target[n, row, col, 5:] = np.eye(n_classes, dtype=np.float32)[int(cls)]
    return target


def _split(pred, boxes: int, ops):
    """Raw (…, B·5 + C) -> offsets (…, B, 2), √wh (…, B, 2), confidences (…, B), class
    probabilities (…, C): sigmoids and a softmax, in `ops` (keras.ops or a NumPy shim)."""
    box = ops.reshape(pred[..., : boxes * 5], (-1, *pred.shape[1:-1], boxes, 5))
    squash = ops.sigmoid(box)
    return squash[..., 0:2], squash[..., 2:4], squash[..., 4], ops.softmax(pred[..., boxes * 5:])


def _iou_in_cell(xy, sq, t_xy, t_sq, grid: int, ops):
    """IoU of boxes given by cell offsets and √(w, h) against the truth in the same cell."""
    def corners(c, s):
        half = s * s * grid / 2  # in cell units
        return c - half, c + half

    (p0, p1), (t0, t1) = corners(xy, sq), corners(t_xy, t_sq)
    inter = ops.prod(ops.maximum(ops.minimum(p1, t1) - ops.maximum(p0, t0), 0.0), axis=-1)
    union = ops.prod(p1 - p0, axis=-1) + ops.prod(t1 - t0, axis=-1) - inter
    return inter / ops.maximum(union, 1e-9)


@keras.saving.register_keras_serializable(package="cnnzoo")
class YoloLoss(keras.losses.Loss):
    """The YOLO v1 loss of one image (see the module docstring); y_true from `encode`."""

    def __init__(self, grid: int = 7, boxes: int = 2, lambda_coord: float = 5.0,
                 lambda_noobj: float = 0.5, class_loss: str = "squared", name: str = "yolo_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if class_loss not in ("squared", "crossentropy"):
            raise ValueError(f"class_loss must be 'squared' or 'crossentropy', got {class_loss!r}")
        self.grid, self.boxes = grid, boxes
        self.lambda_coord, self.lambda_noobj = lambda_coord, lambda_noobj
        self.class_loss = class_loss

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_pred = ops.cast(y_pred, "float32")
        xy, sq, conf, probs = _split(y_pred, self.boxes, ops)
        obj = y_true[..., 0]
        t_xy, t_sq = y_true[..., None, 1:3], y_true[..., None, 3:5]
        iou = ops.stop_gradient(_iou_in_cell(xy, sq, t_xy, t_sq, self.grid, ops))
        resp = ops.one_hot(ops.argmax(iou, axis=-1), self.boxes) * obj[..., None]
        coord = ops.sum((xy - t_xy) ** 2 + (sq - t_sq) ** 2, axis=-1)
        per_box = (self.lambda_coord * resp * coord + resp * (conf - iou) ** 2
                   + self.lambda_noobj * (1.0 - resp) * conf ** 2)
        if self.class_loss == "crossentropy":
            log_probs = ops.log_softmax(y_pred[..., self.boxes * 5:], axis=-1)
            classes = -ops.sum(y_true[..., 5:] * log_probs, axis=-1)
        else:
            classes = ops.sum((probs - y_true[..., 5:]) ** 2, axis=-1)
        per_cell = ops.sum(per_box, axis=-1) + obj * classes
        return ops.sum(per_cell, axis=(1, 2))

    def get_config(self) -> dict:
        return {**super().get_config(), "grid": self.grid, "boxes": self.boxes,
                "lambda_coord": self.lambda_coord, "lambda_noobj": self.lambda_noobj,
                "class_loss": self.class_loss}


def objective(grid: int, boxes: int, n_classes: int, lambda_coord: float,
              lambda_noobj: float, class_loss: str = "squared") -> Objective:
    return Objective(loss=lambda cfg: YoloLoss(grid, boxes, lambda_coord, lambda_noobj,
                                               class_loss),
                     metrics=lambda model: [],
                     target=lambda model: np.zeros((1, grid, grid, 5 + n_classes), np.float32))


class _NumpyOps:
    """The few keras.ops `_split` uses, in NumPy (decoding runs on LiteRT outputs too)."""

    reshape = staticmethod(np.reshape)

    @staticmethod
    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))

    @staticmethod
    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every (x0, y0, x1, y1) row of `a` with every row of `b`."""
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a, area_b = (np.prod(r[:, 2:] - r[:, :2], axis=-1) for r in (a, b))
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-max suppression: indices of the kept boxes, best first."""
    order, keep = np.argsort(-scores, kind="stable"), []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[iou_matrix(boxes[best][None], boxes[order])[0] <= iou]
    return np.array(keep, np.int64)


def decode(outputs: np.ndarray, boxes: int, *, score_threshold: float, nms_iou: float,
           max_detections: int = 100) -> list[np.ndarray]:
    """Raw (N, S, S, B·5 + C) outputs -> per image (k, 6) rows (class, score, x0, y0, x1, y1)
    in [0, 1], per-class non-max suppression, best first."""
    n, grid = outputs.shape[0], outputs.shape[1]
    xy, sq, conf, probs = _split(outputs.astype(np.float32), boxes, _NumpyOps)
    cells = np.stack(np.meshgrid(np.arange(grid), np.arange(grid)), -1)[:, :, None, :]  # (x, y)
    centre, size = (cells + xy) / grid, sq ** 2
    corners = np.concatenate([centre - size / 2, centre + size / 2], -1).reshape(n, -1, 4)
    scores = (conf[..., :, None] * probs[..., None, :]).reshape(n, -1, probs.shape[-1])
    result = []
    for i in range(n):
        found = []
        for c in range(scores.shape[-1]):
            idx = np.flatnonzero(scores[i, :, c] > score_threshold)
            for k in idx[nms(np.clip(corners[i, idx], 0, 1), scores[i, idx, c], nms_iou)]:
                found.append((c, scores[i, k, c], *np.clip(corners[i, k], 0, 1)))
        rows = np.array(found, np.float32).reshape(-1, 6)
        result.append(rows[np.argsort(-rows[:, 1], kind="stable")][:max_detections])
    return result


def _matches(detections: Sequence[np.ndarray], truth: Sequence[np.ndarray], c: int,
             iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class `c`'s detections by descending score, each matched to the best-overlapping
    unmatched true box of its scene: (scene of each detection, hit or not, true boxes per
    scene). Matching stays within a scene, so a resample of scenes reuses it."""
    dets = sorted(((d[1], i, d[2:]) for i, rows in enumerate(detections) for d in rows
                   if d[0] == c), key=lambda d: -d[0])
    gts = [t[t[:, 0] == c, 1:] for t in truth]
    used = [np.zeros(len(g), bool) for g in gts]
    scene, hits = np.array([i for _, i, _ in dets], np.int64), np.zeros(len(dets), bool)
    for k, (_, i, box) in enumerate(dets):
        if len(gts[i]):
            overlaps = iou_matrix(box[None], gts[i])[0]
            overlaps[used[i]] = -1
            j = int(np.argmax(overlaps))
            if overlaps[j] >= iou:
                hits[k], used[i][j] = True, True
    return scene, hits, np.array([len(g) for g in gts], np.float64)


def _ap(scene: np.ndarray, hits: np.ndarray, n_true: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AP for each row of scene weights `w` (B, scenes): precision made monotone, area under
    precision over recall, every detection and true box counted as often as its scene."""
    dw = w[:, scene]  # (B, detections)
    tp, seen = np.cumsum(dw * hits, axis=1), np.cumsum(dw, axis=1)
    positives = w @ n_true
    ones, zeros = np.ones((len(w), 1)), np.zeros((len(w), 1))
    recall = np.hstack([zeros, tp / positives[:, None], ones])
    precision = np.hstack([ones, tp / np.maximum(seen, 1e-12), zeros])
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    return np.sum(np.diff(recall, axis=1) * precision[:, 1:], axis=1)


def average_precision(detections: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                      n_classes: int, iou: float = 0.5, interval: bool = False) -> dict:
    """PASCAL VOC (2010+) AP per class at IoU `iou`: detections sorted by score, each matched to
    the best-overlapping unmatched true box of its class (else a false positive), precision made
    monotone, area under precision over recall. mAP: the mean over classes with true boxes.
    `interval`: also its 95% bootstrap interval over scenes (`<key>_ci`)."""
    from cnnzoo.tasks.intervals import percentile_interval, weights

    key = "map50" if iou == 0.5 else f"map{round(iou * 100)}"
    n = len(truth)
    one = np.ones((1, n))
    w = weights(n) if interval else None
    ap: list[float | None] = []
    resampled = []
    for c in range(n_classes):
        scene, hits, n_true = _matches(detections, truth, c, iou)
        if n_true.sum() == 0:
            ap.append(None)
            continue
        ap.append(float(_ap(scene, hits, n_true, one)[0]))
        if w is not None:  # a class a resample never draws has no AP there (NaN, not 0)
            with np.errstate(invalid="ignore", divide="ignore"):  # 100 resamples at a time:
                aps = np.concatenate([_ap(scene, hits, n_true, w[r:r + 100])  # (B, detections)
                                      for r in range(0, len(w), 100)])     # arrays stay small
            resampled.append(np.where(w @ n_true > 0, aps, np.nan))
    present = [a for a in ap if a is not None]
    out = {key: float(np.mean(present)) if present else 0.0, "ap": ap}
    if w is not None and resampled:
        out[f"{key}_ci"] = percentile_interval(np.nanmean(np.stack(resampled), axis=0))
    return out


def score_map(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
              truth: Sequence[np.ndarray], n_classes: int, boxes: int, *,
              score_threshold: float, nms_iou: float, batch: int = 250,
              interval: bool = False) -> dict:
    """mAP@0.5 and per-class AP of `predict(float images) -> raw grid outputs` on uint8 `x`
    (`interval`: and the mAP's 95% bootstrap interval over scenes)."""
    outputs = np.concatenate([predict(to_unit(x[s:s + batch]))
                              for s in range(0, len(x), batch)])
    found = decode(outputs, boxes, score_threshold=score_threshold, nms_iou=nms_iou)
    return {**average_precision(found, truth, n_classes, interval=interval), "detections": found}


def boxes_figure(x: np.ndarray, truth: Sequence[np.ndarray], found: Sequence[np.ndarray],
                 names: Sequence[str], path: str | Path, title: str,
                 min_score: float = 0.3) -> None:
    """One panel per scene: true boxes dashed white, detections scoring at least `min_score`
    in their class's colour with class and score."""
    from matplotlib.patches import Rectangle

    from cnnzoo.reporting.figures import plt, save_figure

    cols = min(len(x), 4)
    rows = -(-len(x) // cols)
    cmap = plt.get_cmap("tab10", max(len(names), 2))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.4, rows * 2.5), squeeze=False)
    size = x.shape[1]
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= len(x):
            continue
        img = to_unit(x[i])
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        for _, x0, y0, x1, y1 in truth[i] * [1, size, size, size, size]:
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                   edgecolor="white", linestyle="--", linewidth=1))
        for cls, score, x0, y0, x1, y1 in found[i][found[i][:, 1] >= min_score]:
            x0, y0, x1, y1 = (v * size for v in (x0, y0, x1, y1))
            colour = cmap(int(cls))
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                   edgecolor=colour, linewidth=1.5))
            ax.text(x0, y0 - 1, f"{names[int(cls)]} {score:.2f}", color=colour, fontsize=6,
                    va="bottom")
    fig.suptitle(f"{title}\n(dashed: true boxes; solid: detections scoring >= {min_score})",
                 fontsize=9)
    save_figure(fig, path)
