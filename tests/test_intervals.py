"""95% bootstrap intervals: the weighted shortcuts against resampling the items for real."""

import numpy as np
import pytest

from cnnzoo.tasks import detection, intervals, segmentation, verification


def test_accuracy_interval_matches_the_binomial_standard_error():
    correct = np.random.default_rng(0).random(5000) < 0.93
    low, high = intervals.mean_interval(correct)
    se = np.sqrt(correct.mean() * (1 - correct.mean()) / 5000)
    assert low < correct.mean() < high
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.1)
    assert intervals.mean_interval(correct) == [low, high]  # seeded: the same every time


def test_paired_interval_cancels_what_two_models_share():
    rng = np.random.default_rng(1)
    a = rng.random(5000) < 0.9
    b = a.copy()
    b[rng.choice(5000, 60, replace=False)] ^= True  # b differs from a on 60 images only
    paired = intervals.paired_interval(a, b)
    independent = (np.diff(intervals.mean_interval(a)) ** 2 + np.diff(intervals.mean_interval(b)) ** 2) ** 0.5
    assert paired[0] <= a.mean() - b.mean() <= paired[1]
    assert paired[1] - paired[0] < 0.5 * independent[0]
    with pytest.raises(ValueError, match="same test items"):
        intervals.paired_interval(a, b[:10])


def test_packed_correctness_round_trips():
    correct = np.random.default_rng(2).random(4999) < 0.5
    packed = intervals.pack(correct)
    assert len(packed["bits"]) < 900 and (intervals.unpack(packed) == correct).all()
    record = intervals.accuracy_record(correct)
    assert record["test_accuracy"] == correct.mean() and len(record["test_accuracy_ci"]) == 2


def _repeat(items, counts):
    return [x for x, c in zip(items, counts, strict=True) for _ in range(int(c))]


def test_mean_iou_interval_equals_resampling_the_scenes():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, (30, 6, 6))
    p = np.where(rng.random(y.shape) < 0.6, y, rng.integers(0, 4, y.shape))
    brute = []
    for w in intervals.weights(30):
        idx = np.repeat(np.arange(30), w.astype(int))
        brute.append(segmentation.scores(segmentation.confusion(y[idx], p[idx], 4), "abcd")["mean_iou"])
    assert segmentation.mean_iou_interval(y, p, 4) == pytest.approx(intervals.percentile_interval(brute))


def test_map_interval_equals_resampling_the_scenes():
    rng = np.random.default_rng(4)
    truth, found = [], []
    for _ in range(12):
        t = np.c_[rng.integers(0, 2, 2), rng.random((2, 2)) * 0.5, 0.5 + rng.random((2, 2)) * 0.5]
        noisy = t[:, 1:] + rng.normal(0, 0.08, (2, 4))
        found.append(np.c_[t[:, :1], rng.random((2, 1)), noisy].astype(np.float32))
        truth.append(t.astype(np.float32))
    scored = detection.average_precision(found, truth, 2, interval=True)
    brute = [detection.average_precision(_repeat(found, w), _repeat(truth, w), 2)["map50"]
             for w in intervals.weights(12)]
    assert scored["map50"] == detection.average_precision(found, truth, 2)["map50"]
    assert scored["map50_ci"] == pytest.approx(intervals.percentile_interval(brute))


def test_verification_resamples_equal_pairs_of_the_resampled_images():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 40)
    sim = verification.distance_similarity(rng.normal(size=(40, 4)) + y[:, None])
    resampled = verification.resampled_metrics(sim, y, resamples=5)
    for b, w in enumerate(intervals.weights(40, 5)):
        idx = np.repeat(np.arange(40), w.astype(int))
        i, j = np.triu_indices(len(idx), k=1)
        distinct = idx[i] != idx[j]  # two copies of one image are not a pair
        pairs = verification.Pairs(sim[idx[i], idx[j]][distinct], (y[idx[i]] == y[idx[j]])[distinct])
        expected = verification.summary(pairs, threshold=0.0)
        for key in ("auc", "eer", "tar_at_far_0.01"):
            assert resampled[key][b] == pytest.approx(expected[key], abs=1e-9)


def test_one_shot_trials_give_the_gallery_average():
    rng = np.random.default_rng(6)
    y = np.repeat(np.arange(3), 10)
    sim = verification.distance_similarity(rng.normal(size=(30, 2)) + y[:, None])
    correct, probed = verification.one_shot_trials(sim, y, galleries=4, seed=0)
    assert probed.sum() == 4 * 27
    assert verification.one_shot_accuracy(sim, y, 4, 0) == correct.sum() / probed.sum()


def test_mlflow_gets_every_number_and_each_interval_as_two():
    from cnnzoo.tracking.client import metric_values

    record = {"test_accuracy": np.float32(0.5), "train_images": np.int64(500), "epochs": 3,
              **intervals.accuracy_record(np.array([True, False, True, True])),
              "classes": ["a", "b"], "flag": True, "nan": float("nan")}
    logged = metric_values(record)
    assert logged.keys() == {"test_accuracy", "train_images", "epochs",
                             "test_accuracy_ci_low", "test_accuracy_ci_high"}
    assert logged["train_images"] == 500.0 and logged["test_accuracy"] == 0.75
