"""Label sweep bookkeeping: rows from the B stages' metrics, CSV, summary and plot."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnzoo.tools import sweep


def write_metrics(root, arch, scratch, probe, finetune):
    for stage, acc in (("scratch", scratch), ("transfer", probe), ("finetune", finetune)):
        (root / stage).mkdir(parents=True, exist_ok=True)
        (root / stage / f"{arch}.json").write_text(json.dumps({"test_accuracy": acc}))


def test_rows_csv_summary_and_plot(tmp_path):
    rows = []
    for n, accs in ((5, (0.70, 0.80, 0.85)), (20, (0.88, 0.86, 0.91))):
        write_metrics(tmp_path / str(n), "lenet5", *accs)
        write_metrics(tmp_path / str(n), "vgg11", accs[0], accs[1], accs[0] - 0.01)
        rows += sweep.collect(["lenet5", "vgg11"], tmp_path / str(n), n)
    assert rows[0] == {"labels_per_class": 5, "arch": "lenet5", "scratch": 0.7,
                       "linear_probe": 0.8, "fine_tuned": 0.85, "gain": 0.15}
    text = sweep.to_csv(rows).splitlines()
    assert text[0].startswith("labels_per_class,arch,scratch,linear_probe,fine_tuned,gain,")
    assert len(text) == 5
    lines = sweep.summary(rows).splitlines()
    assert lines[0].startswith("    5 labels/class: scratch 0.7000") and "for 1/2" in lines[0]
    from cnnzoo.reporting.figures import label_sweep_plot

    label_sweep_plot(rows, tmp_path / "sweep.png")
    label_sweep_plot(rows, tmp_path / "again.png")
    label_sweep_plot([{**r, "fine_tuned": r["scratch"]} for r in rows], tmp_path / "flat.png")
    assert (tmp_path / "sweep.png").read_bytes() == (tmp_path / "again.png").read_bytes()
    with Image.open(tmp_path / "sweep.png") as drawn, Image.open(tmp_path / "flat.png") as flat:
        assert drawn.width > drawn.height and flat.width > flat.height  # decodable, landscape
        # Fine-tuned on top of scratch draws other curves (the axes' range moves too).
        assert np.asarray(drawn.convert("L")).shape != np.asarray(flat.convert("L")).shape or (
            np.asarray(drawn.convert("L")) != np.asarray(flat.convert("L"))).any()


def test_rows_carry_intervals_and_a_paired_gain(tmp_path):
    from cnnzoo.tasks.intervals import accuracy_record

    rng = np.random.default_rng(0)
    scratch = rng.random(2000) < 0.85
    finetune = scratch | (rng.random(2000) < 0.3)  # right wherever scratch was, and more
    for stage, correct in (("scratch", scratch), ("transfer", scratch), ("finetune", finetune)):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "lenet5.json").write_text(json.dumps(accuracy_record(correct)))
    (row,) = sweep.collect(["lenet5"], tmp_path, 20)
    assert row["fine_tuned_low"] < row["fine_tuned"] < row["fine_tuned_high"]
    assert 0 < row["gain_low"] < row["gain"] < row["gain_high"]
    assert "transfer beats scratch for 1/1 (1 with the paired 95% interval above zero)" in (
        sweep.summary([row]))


def test_invalid_budget_fails_before_anything_runs(tmp_path, monkeypatch):
    from cnnzoo.config import ConfigError
    from tests.conftest import ROOT

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    monkeypatch.setattr(sweep.subprocess, "run", lambda *a, **k: pytest.fail("ran dvc"))
    with pytest.raises(ConfigError, match="labels_per_class=5000 is more than b_pool_per_class"):
        sweep.run_sweep([20, 5000], params_path=str(params))


def test_rows_carry_the_int8_file_and_whether_it_passed_the_gate(tmp_path):
    """`make sweep` reruns the export at every budget: the fine-tuned model's int8 accuracy,
    its drop and the gate's verdict (recorded, not fatal, with export.enforce_gate false)."""
    from cnnzoo.reporting import docs_tables
    from cnnzoo.reporting.figures import label_sweep_plot

    rows = []
    for n, drop, failures in ((5, 0.03, ["int8 accuracy ... below"]), (20, 0.002, [])):
        write_metrics(tmp_path / str(n), "lenet5", 0.7, 0.8, 0.85)
        (tmp_path / str(n) / "export").mkdir()
        (tmp_path / str(n) / "export" / "lenet5.json").write_text(json.dumps(
            {"int8": {"accuracy": 0.85 - drop, "drop": drop, "accuracy_ci": [0.8, 0.84]},
             "gate_failures": failures}))
        rows += sweep.collect(["lenet5"], tmp_path / str(n), n)
    assert rows[0]["int8"] == 0.82 and rows[0]["int8_gate"] == "fail"
    assert rows[1]["int8_gate"] == "pass" and rows[1]["int8_drop"] == 0.002
    assert rows[0]["int8_low"] == 0.8
    assert "int8 TFLite 0.8200 (0/1 within the parity gate)" in sweep.summary(rows)
    (tmp_path / "sweep.csv").write_text(sweep.to_csv(rows))
    (tmp_path / "provenance.json").write_text("{}")
    table = docs_tables.render("sweep", tmp_path)
    assert "| lenet5 | 0.850, +0.150, 0.820 ±0.020 |" in table
    assert "| int8 within the parity gate | 0 of 1 | 1 of 1 |" in table
    label_sweep_plot(rows, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_every_budget_names_the_gate_so_the_default_ends_as_make_run_left_it():
    """The last pass (the default budget again) must set the gate back: each `dvc exp run`
    starts from the previous experiment's params, not from params.yaml."""
    assert sweep.budget_settings([100, 5, 20, 100], 100, True) == [
        {"data.labels_per_class": 100, "export.enforce_gate": True},
        {"data.labels_per_class": 5, "export.enforce_gate": False},
        {"data.labels_per_class": 20, "export.enforce_gate": False},
        {"data.labels_per_class": 100, "export.enforce_gate": True}]
    assert sweep.budget_settings([20], 100, False) == [
        {"data.labels_per_class": 20, "export.enforce_gate": False}]
