"""Plots people would rather look at than read: augmentation previews, confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # stages run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cnnzoo.files import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)


def augmentation_grid(originals: np.ndarray, variants: Sequence[np.ndarray], path: str | Path,
                      title: str = "augmentation preview",
                      row_labels: Sequence[str] | None = None) -> None:
    """Row 0: originals; each further row: one augmented draw of the same images ([0, 1] floats)."""
    labels = ["original", *(row_labels or [f"aug {r}" for r in range(1, len(variants) + 1)])]
    rows, cols = 1 + len(variants), len(originals)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.95), squeeze=False)
    for r, batch in enumerate([originals, *variants]):
        for c in range(cols):
            img = np.clip(batch[c], 0, 1)
            ax = axes[r][c]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(labels[r], fontsize=7)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def confusion_matrix_plot(cm: np.ndarray, names: Sequence[str], path: str | Path,
                          title: str) -> None:
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = cm.max() or 1
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > top / 2 else "black")
    ax.set_title(title, fontsize=9)
    _save(fig, path)
