"""Verification metrics against brute-force definitions."""

import numpy as np
import pytest

from cnnzoo.tasks import verification


def mann_whitney_auc(scores, genuine):
    """P(score of a genuine pair > score of an impostor pair), ties counting one half."""
    g, i = scores[genuine], scores[~genuine]
    return ((g[:, None] > i[None, :]).sum() + 0.5 * (g[:, None] == i[None, :]).sum()) / (
        len(g) * len(i))


@pytest.mark.parametrize("seed", range(4))
def test_auc_is_the_mann_whitney_statistic_ties_included(seed):
    rng = np.random.default_rng(seed)
    genuine = rng.random(300) < 0.3
    scores = np.round(rng.normal(genuine * 1.0, 1.0), 1)  # rounding makes ties
    far, tar, _ = verification.roc(verification.Pairs(scores, genuine))
    assert verification.auc(far, tar) == pytest.approx(mann_whitney_auc(scores, genuine), abs=1e-12)


def test_roc_points_eer_and_tar_at_far():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    genuine = np.array([1, 1, 0, 1, 0, 0, 1, 0], bool)
    far, tar, thresholds = verification.roc(verification.Pairs(scores, genuine))
    np.testing.assert_allclose(tar, [0, .25, .5, .5, .75, .75, .75, 1, 1])
    np.testing.assert_allclose(far, [0, 0, 0, .25, .25, .5, .75, .75, 1])
    assert thresholds[0] == np.inf and thresholds[-1] == 0.2
    # FRR = 1 - TAR crosses FAR between the points (0.25, 0.25) ... on the segment where both
    # are 0.25: the EER is 0.25.
    assert verification.eer(far, tar) == pytest.approx(0.25)
    assert verification.tar_at_far(far, tar, 0.25) == 0.75
    assert verification.tar_at_far(far, tar, 0.1) == 0.5


def test_similarities_match_brute_force():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(7, 5)).astype(np.float32)
    w, b = rng.normal(size=5).astype(np.float32), 0.3
    brute_d = -np.array([[np.linalg.norm(a - c) for c in e] for a in e])
    brute_w = np.array([[np.abs(a - c) @ w + b for c in e] for a in e])
    np.testing.assert_allclose(verification.distance_similarity(e), brute_d, atol=1e-5)
    np.testing.assert_allclose(verification.weighted_l1_similarity(e, w, b, rows=3), brute_w, atol=1e-5)
    # Wide embeddings go through the cache-sized buffer a few columns at a time (here 4 of 7).
    wide, ww = rng.random((7, 20000), dtype=np.float32), rng.random(20000, dtype=np.float32)
    np.testing.assert_allclose(verification.weighted_l1_similarity(wide, ww, b, rows=3),
                               np.abs(wide[:, None] - wide[None]) @ ww + b, rtol=1e-5)
    pairs = verification.Pairs.from_matrix(brute_d, np.array([0, 0, 1, 1, 2, 2, 2]))
    assert len(pairs.scores) == 21 and pairs.genuine.sum() == 1 + 1 + 3


def test_separable_embeddings_verify_and_identify_perfectly():
    y = np.repeat(np.arange(4), 10)
    emb = np.eye(4)[y] * 10 + np.random.default_rng(1).normal(0, 0.1, (40, 4))
    sim = verification.distance_similarity(emb)
    pairs = verification.Pairs.from_matrix(sim, y)
    result = verification.summary(pairs, verification.best_threshold(pairs))
    assert result["auc"] == 1.0 and result["eer"] == 0.0
    assert result["tar_at_far_0.001"] == 1.0 and result["verification_accuracy"] == 1.0
    assert verification.one_shot_accuracy(sim, y, galleries=5, seed=0) == 1.0


def test_random_embeddings_are_near_chance_and_one_class_is_refused():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 400)
    pairs = verification.Pairs.from_matrix(verification.distance_similarity(rng.normal(size=(400, 8))), y)
    assert abs(verification.summary(pairs, 0.0)["auc"] - 0.5) < 0.03
    with pytest.raises(ValueError, match="genuine and impostor"):
        verification.roc(verification.Pairs.from_matrix(np.zeros((5, 5)), np.zeros(5, int)))
