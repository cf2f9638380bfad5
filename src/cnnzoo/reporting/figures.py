"""Plots people would rather look at than read: augmentation previews, confusion matrices,
sweep and size charts, verification ROC curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # stages run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cnnzoo.files import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path) -> None:
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
    save_figure(fig, path)


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
    save_figure(fig, path)


def label_sweep_plot(rows: Sequence[dict], path: str | Path) -> None:
    """Test accuracy vs labels per class (log x): every architecture thin, the mean over
    architectures bold, scratch against linear probe and fine-tuned transfer, and the
    fine-tuned model's int8 TFLite file when the rows have it."""
    series = (("scratch", "from scratch", "tab:red"), ("linear_probe", "linear probe", "tab:gray"),
              ("fine_tuned", "fine-tuned transfer", "tab:blue"))
    if rows and all(r.get("int8") not in (None, "") for r in rows):
        series += (("int8", "its int8 TFLite", "tab:green"),)
    labels = sorted({r["labels_per_class"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, name, colour in series:
        for arch in sorted({r["arch"] for r in rows}):
            pts = sorted((r["labels_per_class"], r[key]) for r in rows if r["arch"] == arch)
            ax.plot(*zip(*pts, strict=True), color=colour, alpha=0.2, linewidth=1)
        mean = [np.mean([r[key] for r in rows if r["labels_per_class"] == n]) for n in labels]
        ax.plot(labels, mean, "o-", color=colour, linewidth=2.5, label=f"{name} (mean)")
    ax.set_xscale("log")
    ax.set_xticks(labels, [str(n) for n in labels])
    ax.set_xlabel("labelled images per class (task B)")
    ax.set_ylabel("test accuracy")
    ax.set_title("label sweep: transfer vs training from scratch, and the phone's file")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path)


def sizes_plot(rows: Sequence[dict], path: str | Path) -> None:
    """File size per network and format on a log axis: the lecture's deployment argument."""
    formats = (("float32_mb", "TFLite float32", "tab:red"),
               ("float16_mb", "TFLite float16", "tab:orange"),
               ("int8_mb", "TFLite int8", "tab:blue"))
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2, 4.5))
    for i, (key, name, colour) in enumerate(formats):
        values = [float(r[key]) for r in rows]
        bars = ax.bar(x + (i - 1) * 0.27, values, 0.27, label=name, color=colour)
        ax.bar_label(bars, [f"{v:.3g}" for v in values], fontsize=6)
    ax.set_yscale("log")
    ax.set_xticks(x, [r["model"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("file size (MB, log scale)")
    ax.set_title("deployment size of canonical networks (random weights)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def reliability_plot(curves: dict[str, dict], path: str | Path, title: str) -> None:
    """Reliability diagram: per confidence bin, accuracy against mean confidence (the diagonal
    is perfect calibration; below it, over-confident); `curves`: name -> (ECE, the bins of
    `cnnzoo.tasks.calibration.reliability`)."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, (err, bins) in curves.items():
        ax.plot(bins["confidence"], bins["accuracy"], "o-", markersize=3,
                label=f"{name} (ECE {err:.4f})")
    ax.plot([0, 1], [0, 1], ":", color="gray", linewidth=1, label="perfect")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("confidence (mean top-1 probability in the bin)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path,
             title: str) -> None:
    """Verification ROC curves, TAR against FAR on a log axis (the low-FAR end is where
    verification systems are compared); `curves`: name -> (far, tar, auc)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (far, tar, area) in curves.items():
        # ~500 log-spaced points of a curve that has one per distinct score (millions)
        pick = np.unique(np.clip(np.searchsorted(far, np.logspace(-5, 0, 500)), 0, len(far) - 1))
        pick = pick[far[pick] > 0]
        ax.plot(far[pick], tar[pick], label=f"{name} (AUC {area:.3f})")
    ax.plot([1e-4, 1], [1e-4, 1], ":", color="gray", linewidth=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate (impostor pairs accepted)")
    ax.set_ylabel("true accept rate (genuine pairs accepted)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def image_grid(images: np.ndarray, captions: Sequence[str], path: str | Path, title: str,
               cols: int = 8) -> None:
    """Images ([0, 1] floats) with a caption each, `cols` per row; a one-line note instead when
    there are none."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.25, rows * 1.55 + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, img, caption in zip(axes.flat[:len(images)], images, captions, strict=True):
        img = np.clip(img, 0, 1)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(caption, fontsize=6)
    if not len(images):
        axes.flat[0].text(0, 0.5, "none", fontsize=9)
    # Above the top row's captions (4 lines each), which reach into the default title space.
    fig.suptitle(title, fontsize=9, y=1 + 0.6 / fig.get_figheight())
    save_figure(fig, path)
