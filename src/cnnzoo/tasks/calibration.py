"""Are the probabilities honest? Expected calibration error, and temperature scaling.

ECE (Guo et al., 2017): the test images binned by confidence (top-1 probability, 15 equal-width
bins); per bin |accuracy - mean confidence|, weighted by the bin's share of images. 0 is perfect;
an over-confident network (the usual case after training to near-zero loss) has confidence above
accuracy.

Temperature scaling divides the logits by one scalar T, fitted on the validation split by
minimising the negative log-likelihood: the predicted classes (argmax) do not change, only how
sure the model says it is. NLL is convex in 1/T, so a golden-section search finds it.
"""

from __future__ import annotations

import numpy as np

from cnnzoo.tasks.intervals import percentile_interval, weights

BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _binned(probs: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """Per image: its confidence, whether it is right, and its bin (one-hot, (n, bins))."""
    conf = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == y).astype(np.float64)
    # Bins (k/B, (k+1)/B]; a confidence of exactly 0 cannot happen with a softmax.
    index = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    return conf, correct, np.eye(bins)[index]


def ece(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> float:
    conf, correct, onehot = _binned(probs, y, bins)
    return float(np.abs((correct - conf) @ onehot).sum() / len(y))


def ece_record(logits: np.ndarray, y: np.ndarray, temperature: float, key: str = "ece",
               bins: int = BINS) -> dict:
    """ECE before (T = 1) and after temperature scaling, each with its bootstrap interval over
    test images: {key: .., key_ci: .., key_scaled: .., key_scaled_ci: ..}."""
    out = {}
    w = weights(len(y))
    for suffix, t in (("", 1.0), ("_scaled", temperature)):
        conf, correct, onehot = _binned(softmax(logits, t), y, bins)
        gap = (correct - conf)[:, None] * onehot  # (n, bins): each image's part of its bin
        resampled = np.abs(w @ gap).sum(axis=1) / w.sum(axis=1)
        out[key + suffix] = float(np.abs(gap.sum(axis=0)).sum() / len(y))
        out[f"{key}{suffix}_ci"] = percentile_interval(resampled)
    return out


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> dict[str, list]:
    """Per non-empty bin: its centre, mean confidence, accuracy and image count (the diagram)."""
    conf, correct, onehot = _binned(probs, y, bins)
    count = onehot.sum(axis=0)
    keep = count > 0
    centre = (np.arange(bins) + 0.5) / bins
    return {"centre": centre[keep].tolist(),
            "confidence": ((conf @ onehot)[keep] / count[keep]).tolist(),
            "accuracy": ((correct @ onehot)[keep] / count[keep]).tolist(),
            "count": count[keep].astype(int).tolist()}


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=-1)) - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray, low: float = 0.05,
                    high: float = 20.0, tol: float = 1e-4) -> float:
    """The T in [low, high] that minimises the validation NLL of softmax(logits / T)."""
    golden = (np.sqrt(5) - 1) / 2
    a, b = 1 / high, 1 / low  # search over beta = 1 / T, where NLL is convex

    def f(beta: float) -> float:
        return nll(logits, y, 1 / beta)

    c, d = b - golden * (b - a), a + golden * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol * max(1.0, a):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - golden * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + golden * (b - a)
            fd = f(d)
    return float(2 / (a + b))
