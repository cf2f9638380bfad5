"""Semantic segmentation: the training objective (a class label for every pixel), the metrics
(pixel accuracy, per-class IoU, mean IoU) and the input / ground truth / prediction figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from cnnzoo.data.serving_input import to_unit
from cnnzoo.training.loop import Objective

# Per-pixel logits against integer masks (N, H, W).
SEGMENT = Objective(
    loss=lambda cfg: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=lambda model: [keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy")],
    target=lambda model: np.zeros((1, *model.output_shape[1:3]), np.int32))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) pixel counts, rows = true class."""
    idx = y_true.astype(np.int64).ravel() * n_classes + y_pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def scores(cm: np.ndarray, names: Sequence[str]) -> dict:
    """Pixel accuracy, IoU = TP / (TP + FP + FN) per class, and their mean over the classes
    present in the ground truth or the prediction (a class absent from both has no IoU)."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    # Lists in class order (JSON files here are written with sorted keys).
    return {"pixel_accuracy": float(tp.sum() / cm.sum()),
            "mean_iou": float(np.nanmean(iou)) if present.any() else 0.0,
            "classes": list(names), "iou": [None if np.isnan(v) else float(v) for v in iou]}


def mean_iou_interval(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[float]:
    """The 95% bootstrap interval of the mean IoU, resampling whole scenes: per-scene confusion
    matrices, summed with each resample's draw counts (`cnnzoo.tasks.intervals`)."""
    from cnnzoo.tasks.intervals import percentile_interval, weights

    n, cells = len(y_true), n_classes ** 2
    idx = (np.arange(n, dtype=np.int64)[:, None] * cells
           + y_true.reshape(n, -1).astype(np.int64) * n_classes + y_pred.reshape(n, -1))
    per_scene = np.bincount(idx.ravel(), minlength=n * cells).reshape(n, cells).astype(np.float64)
    cms = (weights(n) @ per_scene).reshape(-1, n_classes, n_classes)
    tp = np.diagonal(cms, axis1=1, axis2=2)
    union = cms.sum(axis=1) + cms.sum(axis=2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    return percentile_interval(np.nanmean(iou, axis=1))


def predict_masks(predict_logits, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """Argmax masks (N, H, W) from a `predict_logits(float images)` callable, in batches."""
    out = [np.argmax(predict_logits(to_unit(x[s:s + batch])), axis=-1)
           for s in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.uint8)


def overlay_figure(x: np.ndarray, y: np.ndarray, predicted: np.ndarray, names: Sequence[str],
                   path: str | Path, title: str) -> None:
    """Rows: input, ground truth, prediction, one column per scene, with a class legend."""
    from matplotlib.patches import Patch

    from cnnzoo.reporting.figures import plt, save_figure

    cmap = plt.get_cmap("tab20", max(len(names), 2))
    cols = len(x)
    fig, axes = plt.subplots(3, cols, figsize=(cols * 1.3, 4.3), squeeze=False)
    for c in range(cols):
        img = to_unit(x[c])
        axes[0][c].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        for r, mask in ((1, y[c]), (2, predicted[c])):
            axes[r][c].imshow(mask, cmap=cmap, vmin=0, vmax=cmap.N - 1, interpolation="nearest")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for r, label in enumerate(("input", "ground truth", "prediction")):
        axes[r][0].set_ylabel(label, fontsize=8)
    fig.legend(handles=[Patch(color=cmap(i), label=n) for i, n in enumerate(names)],
               loc="lower center", ncol=min(len(names), 6), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(bottom=0.16)
    save_figure(fig, path)
