"""Expected calibration error against a brute-force loop, temperature scaling against a grid
search, and the temperature applied where probabilities are served."""

import numpy as np
import pytest

from cnnzoo.tasks import calibration


def _brute_ece(probs, y, bins=15):
    """ECE written out: each bin (k/B, (k+1)/B], |accuracy - confidence| x its share."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    total = 0.0
    for k in range(bins):
        inside = [i for i in range(len(y)) if k / bins < conf[i] <= (k + 1) / bins]
        if inside:
            acc = np.mean([pred[i] == y[i] for i in inside])
            total += len(inside) / len(y) * abs(acc - np.mean(conf[inside]))
    return total


@pytest.fixture
def overconfident():
    """Labels drawn from softmax(z), logits reported as 3z: a model 3x too sure of itself."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, size=(4000, 5))
    p = calibration.softmax(z)
    y = np.array([rng.choice(5, p=row) for row in p])
    return 3 * z, y


def test_ece_matches_the_loop(overconfident):
    logits, y = overconfident
    for t in (1.0, 3.0, 0.5):
        probs = calibration.softmax(logits, t)
        assert calibration.ece(probs, y) == pytest.approx(_brute_ece(probs, y), abs=1e-12)


def test_temperature_recovers_the_overconfidence(overconfident):
    logits, y = overconfident
    t = calibration.fit_temperature(logits, y)
    grid = np.linspace(0.5, 6, 2201)
    best = grid[np.argmin([calibration.nll(logits, y, g) for g in grid])]
    assert t == pytest.approx(best, abs=0.005)
    assert t == pytest.approx(3.0, rel=0.1)  # the 3x it was made with, up to sampling
    record = calibration.ece_record(logits, y, t)
    assert record["ece_scaled"] < 0.25 * record["ece"]
    for key in ("ece", "ece_scaled"):
        low, high = record[f"{key}_ci"]
        assert low <= record[key] <= high
    # Scaling never changes a prediction.
    assert np.array_equal(calibration.softmax(logits, t).argmax(1), logits.argmax(1))


def test_reliability_bins_cover_every_image(overconfident):
    logits, y = overconfident
    bins = calibration.reliability(calibration.softmax(logits), y)
    assert sum(bins["count"]) == len(y)
    assert all(0 <= a <= 1 for a in bins["accuracy"])
    # Over-confident: accuracy below confidence in the populated top bin.
    assert bins["accuracy"][-1] < bins["confidence"][-1]
