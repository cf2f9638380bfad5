"""`cnnzoo bench`'s split of the last `make run`: per stage group, work and fixed cost."""

import pytest

from cnnzoo.files import write_json
from cnnzoo.tools import timeline


def test_split_adds_work_and_the_gaps_before_each_stage(tmp_path):
    t0 = 1_000_000.0
    stages = [  # (stage, entered, began, ended), seconds after the start; DVC runs one at a time
        ("download", 2.0, 2.5, 10.0),
        ("pretrain@lenet5", 12.0, 13.0, 40.0),
        ("pretrain@alexnet", 41.0, 41.5, 90.0),
    ]
    write_json(tmp_path / "run.json", {
        "dvc_args": ["report"], "started": t0, "wall_s": 95.0, "returncode": 0,
        "stages": [{"stage": s, "entered": t0 + e, "began": t0 + b, "ended": t0 + n}
                   for s, e, b, n in reversed(stages)]})  # any order: sorted by entry
    s = timeline.split(tmp_path / "run.json")
    assert s["stages"] == 3 and s["wall_s"] == 95.0
    assert s["groups"]["download"] == {"stages": 1, "work_s": 7.5, "fixed_s": 2.5}
    assert s["groups"]["pretrain"] == {"stages": 2, "work_s": pytest.approx(75.5),
                                       "fixed_s": pytest.approx(3.0 + 1.5)}
    assert s["fixed_s"] == pytest.approx(7.0) and s["fixed_median_s"] == pytest.approx(2.5)
    assert s["after_last_s"] == pytest.approx(5.0)
    assert s["work_s"] + s["fixed_s"] + s["after_last_s"] == pytest.approx(95.0)
    text = timeline.table(s)
    lines = text.splitlines()
    assert "3 stages run" in lines[0] and "fixed cost 7% (7 s" in lines[0]
    assert lines[4].startswith("| pretrain | 2 | 76 | 4 | 84% |")  # biggest first
    assert lines[5].startswith("| download | 1 | 8 | 2 | 11% |")


def test_no_saved_run_says_how_to_get_one(tmp_path):
    assert timeline.split(tmp_path / "missing.json") is None
    assert "make run" in timeline.table(None)
