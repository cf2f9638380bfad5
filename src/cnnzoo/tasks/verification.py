"""Verification metrics on embeddings: is (x1, x2) the same identity? and who is x?

A similarity matrix over a split's images (higher = more alike) feeds everything: -||f(xi) -
f(xj)|| for embeddings and raw pixels, or the binary Siamese head's logit. Every unordered pair
is scored (its upper triangle): 2,000 test images give 2 million pairs, so a false-accept rate
of 1e-3 rests on over a thousand accepted impostor pairs, not a handful.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FARS = (1e-2, 1e-3)


@dataclass(frozen=True)
class Pairs:
    """Scores of every unordered pair and whether the pair is genuine (same label)."""

    scores: np.ndarray
    genuine: np.ndarray

    @classmethod
    def from_matrix(cls, similarity: np.ndarray, y: np.ndarray) -> Pairs:
        i, j = np.triu_indices(len(y), k=1)
        return cls(similarity[i, j].astype(np.float64), y[i] == y[j])


def distance_similarity(emb: np.ndarray) -> np.ndarray:
    """-||e_i - e_j|| for all rows of `emb` (N, D), via the Gram matrix (one BLAS product)."""
    e = emb.reshape(len(emb), -1).astype(np.float64)
    sq = np.einsum("ij,ij->i", e, e)
    return -np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (e @ e.T), 0.0))


def weighted_l1_similarity(emb: np.ndarray, w: np.ndarray, b: float, rows: int = 8) -> np.ndarray:
    """sum_k w_k |e_ik - e_jk| + b for all pairs: the binary Siamese head's logit.

    No matrix product computes it, so it goes `rows` x `cols` pairs at a time through one
    buffer of about 1 MB that stays in the CPU's cache: 2,000 4,096-d embeddings take ~10 s
    this way, 74 s with (rows, N, D) temporaries that do not fit."""
    e, w = emb.reshape(len(emb), -1).astype(np.float32), w.reshape(-1).astype(np.float32)
    n, d = e.shape
    cols = max(1, (1 << 18) // (rows * d))
    out = np.empty((n, n), np.float32)
    buf = np.empty((rows, cols, d), np.float32)
    for r in range(0, n, rows):
        a = e[r:r + rows, None, :]
        for c in range(0, n, cols):
            t = buf[:len(a), :min(cols, n - c)]
            np.subtract(a, e[None, c:c + cols], out=t)
            np.abs(t, out=t)
            out[r:r + rows, c:c + cols] = t @ w
    return out + np.float32(b)


def roc(pairs: Pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds) for accepting pairs with score >= threshold, thresholds
    descending over the distinct scores (ties are accepted together)."""
    if pairs.genuine.all() or not pairs.genuine.any():
        raise ValueError("verification needs genuine and impostor pairs: the split has "
                         f"{int(pairs.genuine.sum())} genuine of {len(pairs.genuine)} pairs")
    order = np.argsort(-pairs.scores, kind="stable")
    s, g = pairs.scores[order], pairs.genuine[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of every tie group
    tp, fp = np.cumsum(g)[last], np.cumsum(~g)[last]
    tar, far = tp / g.sum(), fp / (~g).sum()
    return np.r_[0.0, far], np.r_[0.0, tar], np.r_[np.inf, s[last]]


def auc(far: np.ndarray, tar: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids: ties count one half, as Mann-Whitney's U)."""
    return float(np.trapezoid(tar, far))


def roc_auc(pairs: Pairs) -> float:
    """`auc` of `pairs`' ROC curve."""
    return auc(*roc(pairs)[:2])


def eer(far: np.ndarray, tar: np.ndarray) -> float:
    """Equal error rate: where the false-accept rate equals the false-reject rate (1 - TAR),
    linearly interpolated between the two ROC points around the crossing."""
    frr = 1.0 - tar
    k = int(np.argmax(far >= frr))  # the first point where FAR has caught up with FRR
    if k == 0:
        return float(far[0])
    f0, f1, r0, r1 = far[k - 1], far[k], frr[k - 1], frr[k]
    t = (r0 - f0) / ((f1 - f0) - (r1 - r0))
    return float(f0 + t * (f1 - f0))


def tar_at_far(far: np.ndarray, tar: np.ndarray, target: float) -> float:
    """The best TAR at a threshold whose FAR does not exceed `target`."""
    return float(tar[far <= target].max())


def balanced_accuracy(pairs: Pairs, threshold: float) -> float:
    """Mean of the genuine and impostor pairs' accuracies: what a balanced pair set scores."""
    accept = pairs.scores >= threshold
    return float((accept[pairs.genuine].mean() + (~accept[~pairs.genuine]).mean()) / 2)


def best_threshold(pairs: Pairs) -> float:
    """The threshold that maximises balanced accuracy (TAR + 1 - FAR) / 2, e.g. on validation."""
    far, tar, thresholds = roc(pairs)
    k = int(np.argmax(tar - far))
    return float(thresholds[k]) if np.isfinite(thresholds[k]) else float(thresholds[1])


def one_shot_trials(similarity: np.ndarray, y: np.ndarray, galleries: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One-shot identification: a gallery holds one random image per class, every other image is
    a probe assigned the class of its most similar gallery image, over `galleries` seeded
    galleries. Per image: (times identified correctly, times a probe)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    correct, probed = np.zeros(len(y)), np.zeros(len(y))
    for _ in range(galleries):
        pick = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])
        probes = np.setdiff1d(np.arange(len(y)), pick)
        predicted = classes[np.argmax(similarity[np.ix_(probes, pick)], axis=1)]
        correct[probes] += predicted == y[probes]
        probed[probes] += 1
    return correct, probed


def one_shot_accuracy(similarity: np.ndarray, y: np.ndarray, galleries: int, seed: int) -> float:
    """`one_shot_trials`' accuracy, averaged over the galleries (each has the same probes)."""
    correct, probed = one_shot_trials(similarity, y, galleries, seed)
    return float(correct.sum() / probed.sum())


# Each resample reweights 2 million pairs: 200 keep the three methods' intervals to seconds.
PAIR_RESAMPLES = 200


def resampled_metrics(similarity: np.ndarray, y: np.ndarray,
                      resamples: int = PAIR_RESAMPLES) -> dict[str, np.ndarray]:
    """AUC, EER and TAR at `FARS` under `resamples` bootstrap draws of the test images: a pair
    (i, j) counts w_i x w_j times when the draw took image i w_i times (the same seeded draws
    for every method, so two methods' differences pair up)."""
    from cnnzoo.tasks.intervals import weights

    i, j = np.triu_indices(len(y), k=1)
    order = np.argsort(-similarity[i, j], kind="stable")
    i, j = i[order].astype(np.int32), j[order].astype(np.int32)
    s = similarity[i, j]
    genuine = (y[i] == y[j]).astype(np.float32)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    out: dict[str, list[float]] = {"auc": [], "eer": [],
                                   **{f"tar_at_far_{t:g}": [] for t in FARS}}
    for w in weights(len(y), resamples).astype(np.float32):
        pw = w[i] * w[j]
        tp, seen = np.cumsum(pw * genuine, dtype=np.float64), np.cumsum(pw, dtype=np.float64)
        tp, fp = tp[last], (seen - tp)[last]
        tar, far = np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]
        out["auc"].append(auc(far, tar))
        out["eer"].append(eer(far, tar))
        for t in FARS:
            out[f"tar_at_far_{t:g}"].append(tar_at_far(far, tar, t))
    return {k: np.array(v) for k, v in out.items()}


def summary(test: Pairs, threshold: float) -> dict[str, float]:
    """AUC, EER, TAR at each of `FARS`, and balanced verification accuracy at `threshold`."""
    far, tar, _ = roc(test)
    out = {"auc": auc(far, tar), "eer": eer(far, tar)}
    for target in FARS:
        out[f"tar_at_far_{target:g}"] = tar_at_far(far, tar, target)
    out["threshold"] = threshold
    out["verification_accuracy"] = balanced_accuracy(test, threshold)
    return out
