"""Mean corruption accuracy: what it averages, its interval, and the report's table (which
leaves out rows measured on other int8 files than the report's)."""

import hashlib

import numpy as np
import pytest

from cnnzoo.reporting import robustness_table
from cnnzoo.tasks import robustness
from cnnzoo.tasks.corruptions import CORRUPTIONS, SEVERITIES


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    x = np.zeros((60, 16, 16, 1), np.float32)
    x[y == 1, 4:12, 4:12] = 0.8  # class 1: a bright square; class 0: black
    x += rng.random(x.shape).astype(np.float32) * 0.1
    return x, y


def _bright(images):
    """A classifier: is the centre brighter than 0.4?"""
    return (images[:, 4:12, 4:12].mean(axis=(1, 2, 3)) > 0.4).astype(int)


def test_mca_is_the_mean_over_every_corruption_and_severity(data):
    x, y = data
    suite = robustness.corrupted_suite(x, seed=0)
    assert len(suite) == len(CORRUPTIONS) * len(SEVERITIES) == 33
    r = robustness.corruption_accuracy(_bright, x, y, suite)
    assert r["clean_accuracy"] == 1.0
    want = {k: float(np.mean(_bright(v) == y)) for k, v in suite.items()}
    assert r["severities"] == {f"{n}_{s}": a for (n, s), a in want.items()}
    assert r["mca"] == pytest.approx(np.mean(list(want.values())))
    assert r["corruptions"]["inversion"] == pytest.approx(
        np.mean([want[("inversion", s)] for s in SEVERITIES]))
    assert r["corruptions"]["inversion"] < 1  # the negative turns black into bright
    low, high = r["mca_ci"]
    assert low <= r["mca"] <= high and high - low < 0.2


def _row(arch, mca, kb, sha):
    found = {m: {"clean_accuracy": 0.9, "mca": mca, "mca_ci": [mca - 0.01, mca + 0.01],
                 "corruptions": dict.fromkeys(CORRUPTIONS, mca)} for m in ("keras", "int8")}
    return robustness_table.row(arch, found, int(kb * 1024), sha)


def test_the_report_takes_only_rows_of_its_own_int8_files(tmp_path):
    exports = tmp_path / "exports"
    for arch in ("a", "b"):
        (exports / arch).mkdir(parents=True)
        (exports / arch / f"{arch}_int8.tflite").write_bytes(arch.encode())
    sha = {a: hashlib.sha256(a.encode()).hexdigest() for a in "ab"}
    rows = [_row("a", 0.70, 50, sha["a"]), _row("b", 0.72, 500, "another file")]
    robustness_table.write(rows, tmp_path / "r.csv", tmp_path / "r.md", images=100)
    found = robustness_table.for_report(tmp_path / "r.csv", exports)
    assert set(found) == {"a"}
    md = robustness_table.robustness_markdown(found, ["a", "b"])
    assert "| a | 50.0 |" in md and "b: not measured for this run's int8 files" in md
    board = [{"arch": "a"}, {"arch": "b"}]
    robustness_table.mca_columns(board, found)
    assert board[0]["mca_int8"] == 0.70 and "mca_int8" not in board[1]
    assert robustness_table.for_report(tmp_path / "missing.csv", exports) == {}
    assert "`make robustness`" in robustness_table.robustness_markdown({}, ["a"])


def test_most_robust_per_kb_is_the_smallest_file_near_the_best():
    rows = [_row("big", 0.75, 900, ""), _row("small", 0.745, 40, ""), _row("weak", 0.6, 10, "")]
    assert robustness_table.most_robust_per_kb(rows)["arch"] == "small"
