"""Figures of what a network learned (numbers from cnnzoo.reporting.insight), its training curves across
the pretrain / transfer / fine-tune phases, and the leaderboard picture (accuracy against cost)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter

from cnnzoo.files import read_csv
from cnnzoo.reporting.figures import plt, save_figure
from cnnzoo.reporting.insight import Exemplars


def _show(ax, img: np.ndarray, title: str = "") -> None:
    img = np.clip(img, 0, 1)
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=6)


def filters_figure(filters: np.ndarray, path: str | Path, title: str) -> None:
    """A grid of first-layer kernels (grey = 0, lighter = positive weights)."""
    n = len(filters)
    cols = min(n, 16)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6, rows * 0.6 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show(ax, filters[i])
        else:
            ax.axis("off")
    fig.suptitle(title, fontsize=8)
    save_figure(fig, path)


def exemplars_figure(found: Sequence[Exemplars], x: np.ndarray, path: str | Path,
                     title: str) -> None:
    """One row per (layer, filter): the test images that activate it most, strongest first."""
    rows = [(ex, f, idx) for ex in found for f, idx in zip(ex.filters, ex.images, strict=True)]
    k = max(len(idx) for _, _, idx in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(k * 0.75 + 1.2, len(rows) * 0.75 + 0.4),
                             squeeze=False)
    for r, (ex, f, idx) in enumerate(rows):
        for c in range(k):
            if c < len(idx):
                _show(axes[r][c], x[idx[c]])
            else:
                axes[r][c].axis("off")
        axes[r][0].set_ylabel(f"{ex.depth}\n{ex.layer}\n#{f}", fontsize=5, rotation=0,
                              ha="right", va="center")
    fig.suptitle(title, fontsize=8)
    save_figure(fig, path)


def maximization_figure(images: np.ndarray, names: Sequence[str], path: str | Path,
                        title: str) -> None:
    fig, axes = plt.subplots(1, len(images), figsize=(len(images) * 1.3, 1.7), squeeze=False)
    for ax, img, name in zip(axes[0], images, names, strict=True):
        _show(ax, img, name)
    fig.suptitle(title, fontsize=8)
    save_figure(fig, path)


def gradcam_figure(x: np.ndarray, cams: np.ndarray, true: Sequence[str], predicted: Sequence[str],
                   path: str | Path, title: str) -> None:
    """Each image above its heatmap overlay, titled true -> predicted (red = wrong)."""
    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(n * 1.1, 2.6), squeeze=False)
    for i in range(n):
        wrong = true[i] != predicted[i]
        _show(axes[0][i], x[i])
        axes[0][i].set_title(f"{true[i]}\n→ {predicted[i]}", fontsize=5,
                             color="red" if wrong else "black")
        _show(axes[1][i], x[i])
        axes[1][i].imshow(cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
    fig.suptitle(title, fontsize=8)
    save_figure(fig, path)


def read_history(path: str | Path) -> dict[str, np.ndarray]:
    """A training history CSV (epoch, loss, accuracy, val_...) as one float array per column."""
    rows = read_csv(path)
    return {k: np.array([float(r[k]) for r in rows]) for k in (rows[0] if rows else {})}


def curves_figure(phases: Sequence[tuple[str, dict[str, np.ndarray]]], path: str | Path,
                  title: str) -> None:
    """Loss (log scale) and accuracy, train (solid) vs validation (dashed), the phases one after
    another on one epoch axis, each phase shaded in its colour."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    offset, colours = 0, ("tab:blue", "tab:orange", "tab:green", "tab:purple")
    for (name, hist), colour in zip(phases, colours, strict=False):
        n = len(next(iter(hist.values()), []))
        if not n:
            continue
        epochs = offset + np.arange(1, n + 1)
        for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
            if metric in hist:
                ax.plot(epochs, hist[metric], "-", color=colour, marker=".", label=f"{name} train")
            if f"val_{metric}" in hist:
                ax.plot(epochs, hist[f"val_{metric}"], "--", color=colour, marker=".",
                        label=f"{name} val")
            ax.axvspan(offset + 0.5, offset + n + 0.5, color=colour, alpha=0.07)
        offset += n
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch (all phases, shaded; the legend names them)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")  # a fine-tune's first epochs can sit 10x above the rest
    axes[1].legend(fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=9, y=1.04)
    save_figure(fig, path)


def leaderboard_figure(rows: Sequence[dict], path: str | Path, title: str) -> None:
    """Fine-tuned accuracy against MACs per image and against the int8 .tflite size: bubble
    area = parameters, each point labelled. Up and to the left is the network to ship."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    params = np.array([r["params"] for r in rows], np.float64)
    area = 30 + 900 * params / params.max()
    acc = [r["acc_keras"] for r in rows]
    for ax, key, label in ((axes[0], "macs", "MACs per image"),
                           (axes[1], "tflite_int8_kb", "int8 .tflite size (KB)")):
        xs = [r[key] for r in rows]
        ax.scatter(xs, acc, s=area, alpha=0.45, c=range(len(rows)), cmap="tab10",
                   edgecolors="black", linewidths=0.5)
        if all("acc_keras_low" in r for r in rows):  # the 95% intervals (bootstrap, test images)
            yerr = [[a - r["acc_keras_low"] for a, r in zip(acc, rows, strict=True)],
                    [r["acc_keras_high"] - a for a, r in zip(acc, rows, strict=True)]]
            ax.errorbar(xs, acc, yerr=yerr, fmt="none", ecolor="black", elinewidth=0.8,
                        capsize=2, alpha=0.7)
        for r, xv, yv in zip(rows, xs, acc, strict=True):
            ax.annotate(r["arch"], (xv, yv), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
        ax.margins(0.12)  # room for the largest bubbles
        ax.set_xlabel(f"{label} (log scale)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("task-B test accuracy (fine-tuned, 95% interval)")
    fig.suptitle(f"{title} (bubble area = parameters)", fontsize=9)
    save_figure(fig, path)
