"""95% confidence intervals by the bootstrap over test items (images, scenes, probes).

Every resample draws the test items with replacement, as `weights`: how often each item was
drawn (B, n). A metric that sums over items (accuracy, a confusion matrix, matched detections,
pairs of images) is then recomputed from weighted sums, so 1,000 resamples of 5,000 images cost
milliseconds, and two models scored on the same items share the resamples: the interval of their
difference is paired. The resamples are seeded, so the same predictions always give the same
interval. A percentile interval: the 2.5th and 97.5th percentiles of the resampled metric.
"""

from __future__ import annotations

import base64
import functools

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 20260501  # fixed: the interval is a property of the predictions, not of the run's seed


@functools.lru_cache(maxsize=4)
def weights(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n) draw counts: row b says how often resample b drew each of the n items
    (read-only: cached, as every model of a run is scored on the same test items)."""
    if n < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 test items, got {n}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    counts = np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n)
    counts = counts.astype(np.float64)
    counts.flags.writeable = False
    return counts


def percentile_interval(values: np.ndarray) -> list[float]:
    """[low, high] of the resampled metric `values` at `LEVEL`."""
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.nanpercentile(np.asarray(values, np.float64), [tail, 100 - tail])
    return [float(low), float(high)]


def mean_interval(values: np.ndarray) -> list[float]:
    """The interval of the mean of per-item `values` (accuracy from 0/1 correctness)."""
    values = np.asarray(values, np.float64)
    w = weights(len(values))
    return percentile_interval(w @ values / w.sum(axis=1))


def paired_interval(a: np.ndarray, b: np.ndarray) -> list[float]:
    """The interval of mean(a) - mean(b) for two models scored on the same items: each
    resample draws the same items for both, so what the items share cancels."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired interval: {a.shape} and {b.shape} are not the same test items")
    return mean_interval(a - b)


def pack(correct: np.ndarray) -> dict:
    """Per-item correctness as {"n", "bits"} (base64 of the packed bits: 5,000 test images take
    under 1 KB of JSON), so the report can pair two models' results on the same images."""
    correct = np.asarray(correct, bool)
    return {"n": int(correct.size), "bits": base64.b64encode(np.packbits(correct)).decode("ascii")}


def unpack(packed: dict) -> np.ndarray:
    bits = np.frombuffer(base64.b64decode(packed["bits"]), np.uint8)
    return np.unpackbits(bits)[: packed["n"]].astype(bool)


def accuracy_record(correct: np.ndarray, key: str = "test_accuracy") -> dict:
    """{key, key_ci, key_correct}: the accuracy, its interval and the per-item bits."""
    correct = np.asarray(correct, bool)
    return {key: float(correct.mean()), f"{key}_ci": mean_interval(correct),
            f"{key}_correct": pack(correct)}
