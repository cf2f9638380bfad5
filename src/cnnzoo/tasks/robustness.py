"""Accuracy off the test set: a model on every corruption and severity of
`cnnzoo.tasks.corruptions`, and its mean corruption accuracy (mCA) with a 95% interval over test
images (each image's share of its 33 corrupted versions classified right, bootstrapped)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnzoo.tasks.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from cnnzoo.tasks.intervals import mean_interval


def corrupted_suite(x: np.ndarray, seed: int) -> dict[tuple[str, int], np.ndarray]:
    """Every (corruption, severity) version of `x` (float, [0, 1])."""
    return {(name, s): corrupt(x, name, s, seed) for name in CORRUPTIONS for s in SEVERITIES}


def corruption_accuracy(classes: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                        y: np.ndarray, suite: dict[tuple[str, int], np.ndarray]) -> dict:
    """`classes(images) -> predicted classes` on the clean images and on every version in
    `suite`: clean accuracy, per corruption and severity, per corruption (mean over
    severities), and the mCA over all of them with its interval."""
    keys = list(suite)
    # One call over everything: batch-friendly for Keras and for LiteRT alike.
    predicted = classes(np.concatenate([x, *(suite[k] for k in keys)]))
    n = len(y)
    clean = predicted[:n] == y
    right = np.stack([predicted[n * (i + 1): n * (i + 2)] == y for i in range(len(keys))])
    per = {f"{name}_{s}": float(right[i].mean()) for i, (name, s) in enumerate(keys)}
    by_name = {name: float(np.mean([per[f"{name}_{s}"] for s in SEVERITIES]))
               for name in CORRUPTIONS}
    per_image = right.mean(axis=0)  # each image's share of its corrupted versions
    return {"clean_accuracy": float(clean.mean()), "mca": float(per_image.mean()),
            "mca_ci": mean_interval(per_image), "corruptions": by_name, "severities": per}
