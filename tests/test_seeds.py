"""Seeds as an experiment: the stages rerun, the per-seed numbers and their spread."""

import json
import sys
from pathlib import Path

import pytest

from cnnzoo import config
from cnnzoo.tools import seeds
from tests.conftest import ROOT


def _write(root, arch, fine, scratch):
    for stage, acc in (("finetune", fine), ("scratch", scratch)):
        (root / stage).mkdir(parents=True, exist_ok=True)
        (root / stage / f"{arch}.json").write_text(json.dumps({"test_accuracy": acc}))


def test_results_and_their_spread(tmp_path):
    per_seed = {}
    for seed, (fine, scratch, miou) in {42: (0.92, 0.90, 0.55), 43: (0.94, 0.90, 0.61)}.items():
        _write(tmp_path / str(seed), "lenet5", fine, scratch)
        (tmp_path / str(seed) / "segment").mkdir()
        (tmp_path / str(seed) / "segment/test.json").write_text(json.dumps({"mean_iou": miou}))
        per_seed[seed] = seeds.results(tmp_path / str(seed), ["lenet5"], ["segment"])
    rows = {r["result"]: r for r in seeds.table(per_seed)}
    assert set(rows) == {"lenet5 fine-tuned", "lenet5 scratch", "lenet5 transfer gain",
                         "segmentation mean IoU"}
    gain = rows["lenet5 transfer gain"]
    assert gain["seeds"] == "42 43" and gain["mean"] == pytest.approx(0.03)
    assert gain["std"] == pytest.approx(0.0141, abs=1e-4) and gain["values"] == "0.0200 0.0400"
    assert rows["segmentation mean IoU"]["min"] == 0.55


def test_only_the_training_stages_rerun_at_each_seed_and_the_default_comes_back(tmp_path,
                                                                                monkeypatch):
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    params.write_text(text)
    ran = []

    def fake_dvc(cmd, env):  # records the dvc command lines instead of training
        assert env["PATH"].startswith(str(Path(sys.executable).parent))  # this env's python
        ran.append(cmd[3:])
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(seeds, "results", lambda *a: {"x": float(len(ran))})
    monkeypatch.setattr("cnnzoo.tools.sweep.subprocess.run", fake_dvc)
    rows = seeds.run_seeds(3, params_path=str(params), csv_path=str(tmp_path / "seeds.csv"))
    expected = seeds.stages(config.load(params), pretrain=False)
    assert "pretrain" not in expected and expected[:3] == ["transfer", "finetune", "scratch"]
    assert [c[:3] for c in ran] == [["exp", "run", "-S"]] * 4
    assert [c[3] for c in ran] == ["base.seed=42", "base.seed=43", "base.seed=44", "base.seed=42"]
    assert all(c[4] == "-s" and c[5:] == expected for c in ran)
    assert rows[0]["values"] == "1.0000 2.0000 3.0000" and params.read_text() == text
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seeds.run_seeds(1, params_path=str(params))
