"""Triplet loss with online semi-hard mining against a brute-force NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

from cnnzoo.training.losses import TripletSemiHardLoss, pairwise_distances, triplet_semihard_loss


def reference(labels: np.ndarray, emb: np.ndarray, margin: float) -> float:
    """FaceNet's semi-hard selection, written as loops over every (anchor, positive) pair."""
    n = len(labels)
    d = np.sqrt(((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1))
    total, count = 0.0, 0
    for a in range(n):
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        if not negatives:
            continue
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [d[a, k] for k in negatives if d[a, k] > d[a, p]]
            neg = min(farther) if farther else max(d[a, k] for k in negatives)
            total += max(d[a, p] - neg + margin, 0.0)
            count += 1
    return total / count if count else 0.0


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, dim, classes = rng.integers(4, 24), rng.integers(2, 9), rng.integers(2, 5)
    labels = rng.integers(0, classes, n)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    margin = float(rng.uniform(0.1, 1.0))
    got = float(triplet_semihard_loss(labels, emb, margin))
    assert got == pytest.approx(reference(labels, emb, margin), rel=1e-5, abs=1e-6)


def test_no_farther_negative_falls_back_to_the_farthest():
    # Anchor 0's positive (1) is far; both negatives are closer: the farthest negative is used.
    emb = np.array([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0]], np.float32)
    labels = np.array([0, 0, 1, 2])
    assert float(triplet_semihard_loss(labels, emb, 0.5)) == pytest.approx(
        reference(labels, emb, 0.5))


def test_no_positive_pairs_gives_zero_and_one_class_gives_zero():
    emb = np.eye(4, dtype=np.float32)
    assert float(triplet_semihard_loss(np.arange(4), emb, 1.0)) == 0.0
    assert float(triplet_semihard_loss(np.zeros(4), emb, 1.0)) == 0.0


def test_distances_and_gradient_are_finite_for_identical_embeddings():
    emb = tf.Variable(np.ones((4, 3), np.float32))
    with tf.GradientTape() as tape:
        loss = triplet_semihard_loss(np.array([0, 0, 1, 1]), emb, 1.0)
    grad = tape.gradient(loss, emb)
    assert float(loss) == pytest.approx(1.0)  # all distances 0: margin
    assert np.isfinite(grad.numpy()).all()
    d = np.asarray(pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)))
    np.testing.assert_allclose(d, [[0, 5], [5, 0]], atol=1e-6)


def test_keras_loss_round_trips_its_margin():
    loss = TripletSemiHardLoss(margin=0.3)
    again = TripletSemiHardLoss.from_config(loss.get_config())
    labels, emb = np.array([0, 0, 1, 1]), np.eye(4, dtype=np.float32)
    assert again.margin == 0.3
    assert float(loss(labels, emb)) == pytest.approx(reference(labels, emb, 0.3), rel=1e-5)
