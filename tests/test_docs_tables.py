"""The README's and docs' results tables are generated from docs/results/ (`make docs-tables`)."""

import json

from cnnzoo.reporting import docs_tables
from cnnzoo.tools.sweep import to_csv as sweep_csv
from tests.conftest import ROOT


def test_every_table_in_the_docs_is_what_its_files_render():
    blocks = [m.group("name") for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
              for m in docs_tables.BLOCK.finditer(doc.read_text())]
    assert {"leaderboard", "transfer", "other-pipelines"} <= set(blocks)
    assert docs_tables.stale_blocks(ROOT) == [], "run `make docs-tables` (or --render-only)"


LEADERBOARD = ("arch,params,macs,tflite_int8_kb,acc_scratch,acc_probe,acc_keras,gain,acc_int8,"
               "acc_scratch_low,acc_scratch_high,acc_keras_low,acc_keras_high,gain_low,gain_high\n"
               "lenet5,61281,416100,65.4,0.8986,0.8236,0.9228,+0.0242,0.92,"
               "0.8902,0.907,0.9154,0.93,0.0158,0.0326\n")


def _project(tmp_path, leaderboard=LEADERBOARD):
    (tmp_path / "reports").mkdir(exist_ok=True)
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "reports/leaderboard.csv").write_text(leaderboard)
    (tmp_path / "README.md").write_text("# x\n\n<!-- table: leaderboard -->\nold\n<!-- /table -->\n")
    (tmp_path / "docs/results.md").write_text("<!-- table: transfer -->\n<!-- /table -->\nend\n")


def test_a_run_is_copied_with_its_provenance_and_the_blocks_rewritten(tmp_path):
    _project(tmp_path)
    assert docs_tables.main(["--root", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "| lenet5 | 61,281 | 416,100 | 65.4 | 0.8986 ±0.0084 | 0.9228 ±0.0073 | " \
           "+0.0242 [+0.0158, +0.0326] | 0.9200 |" in readme
    assert "old" not in readme and readme.endswith("<!-- /table -->\n")
    provenance = json.loads((tmp_path / "docs/results/provenance.json").read_text())
    # calibration.csv: the same file, for the calibration table alone
    assert set(provenance) == {"leaderboard.csv", "calibration.csv"}
    assert provenance["leaderboard.csv"]["host"]
    assert f"of the run of {provenance['leaderboard.csv']['date']} on " in readme
    assert "| lenet5 | 0.8986 ±0.0084 | 0.8236 |" in (tmp_path / "docs/results.md").read_text()
    assert docs_tables.stale_blocks(tmp_path) == []

    # A new run's numbers: the docs are stale until the tables are generated again.
    _project(tmp_path, LEADERBOARD.replace("0.9228", "0.9301"))
    assert docs_tables.snapshot(tmp_path) == ["leaderboard.csv", "calibration.csv"]
    assert docs_tables.stale_blocks(tmp_path) == ["README.md: leaderboard", "docs/results.md: transfer"]
    docs_tables.update_docs(tmp_path)
    assert docs_tables.stale_blocks(tmp_path) == [] and docs_tables.snapshot(tmp_path) == []


def test_sweep_table_counts_the_gains_whose_interval_is_above_zero(tmp_path):
    rows = [{"labels_per_class": n, "arch": a, "scratch": 0.8, "linear_probe": 0.7,
             "fine_tuned": 0.85, "gain": 0.05, "fine_tuned_low": 0.84, "fine_tuned_high": 0.86,
             "gain_low": low, "gain_high": 0.06}
            for n in (5, 20) for a, low in (("lenet5", 0.01), ("nin", -0.01))]
    (tmp_path / "sweep.csv").write_text(sweep_csv(rows))
    (tmp_path / "provenance.json").write_text("{}")
    table = docs_tables.render("sweep", tmp_path)
    assert "| lenet5 | 0.850 ±0.010, +0.050 [+0.010, +0.060] |" in table
    assert "| transfer > scratch (interval above 0) | 1 of 2 | 1 of 2 |" in table


def _export_metrics(drop_int8: float) -> dict:
    def variant(kb: float, drop: float) -> dict:
        return {"size_bytes": kb * 1024, "drop": drop, "accuracy": 0.92 - drop,
                "latency": {"1t_median_ms": 0.05, "2t_median_ms": 0.04}}
    m = {v: variant(kb, d) for v, kb, d in (("float32", 243.5, 0.0), ("float16", 125.6, 0.0004),
                                            ("dynamic_int8", 69.1, -0.0002),
                                            ("int8", 65.4, drop_int8))}
    del m["int8"]["latency"]["2t_median_ms"]  # as export.latency_threads: [1] would
    return {**m, "int8_size_ratio": 3.72, "int8_scales": "per_tensor", "keras_accuracy": 0.92}


def test_a_folder_source_is_copied_whole_and_renders_the_deployment_table(tmp_path):
    """metrics/export/ holds one file per family: the snapshot copies the folder (again only
    when a file changed), and the table names each family's largest drop and its variant."""
    _project(tmp_path)
    (tmp_path / "metrics/export").mkdir(parents=True)
    (tmp_path / "metrics/export/lenet5.json").write_text(json.dumps(_export_metrics(0.0010)))
    (tmp_path / "docs/deployment.md").write_text("<!-- table: deployment -->\n<!-- /table -->\n")
    assert docs_tables.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / "docs/results/export/lenet5.json").is_file()
    table = (tmp_path / "docs/deployment.md").read_text()
    assert ("| lenet5 | 243.5 | 125.6 | 69.1 | 65.4 | 3.7× | per-tensor | 0.9200 | +0.0010 (int8) "
            "| 0.050 / – | 0.050 |") in table
    assert "from `metrics/export` of the run of" in table
    assert docs_tables.snapshot(tmp_path) == []  # nothing changed

    (tmp_path / "metrics/export/lenet5.json").write_text(json.dumps(_export_metrics(0.0001)))
    assert docs_tables.snapshot(tmp_path) == ["export"]
    assert docs_tables.stale_blocks(tmp_path) == ["docs/deployment.md: deployment"]
    docs_tables.update_docs(tmp_path)
    assert "| +0.0004 (float16) |" in (tmp_path / "docs/deployment.md").read_text()


def test_the_deployment_table_lists_the_variants_the_export_writes():
    from cnnzoo.deploy.convert import VARIANTS

    assert docs_tables.VARIANTS == VARIANTS  # a TensorFlow-free copy, kept in step


def test_the_int8_calibration_onnx_and_robustness_tables(tmp_path):
    """The export metrics' debugger, repair, disagreement, ECE and ONNX entries, and `make
    robustness`'s CSV, rendered as the docs show them."""
    from cnnzoo.reporting import robustness_table
    from cnnzoo.tasks.corruptions import CORRUPTIONS

    m = _export_metrics(0.0010)
    m["int8"].update(layers=[{"rmse_scale": 0.4}, {"rmse_scale": 1.2}], repair=None,
                     worst_layer={"layer": "head", "op": "FULLY_CONNECTED", "rmse_scale": 1.2},
                     ece=0.0612, ece_scaled=0.0071)
    m.update(temperature=0.655, disagreement={"count": 9, "float_right": 5, "int8_right": 3,
                                              "median_float_margin": 0.08,
                                              "median_float_margin_all": 0.97},
             onnx={"size_bytes": 240 * 1024, "accuracy": 0.92, "drop": 0.0,
                   "max_abs_logit_diff_float32": 1.5e-6,
                   "latency": {"1t_median_ms": 0.03, "2t_median_ms": 0.02}})
    (tmp_path / "export").mkdir()
    (tmp_path / "export/lenet5.json").write_text(json.dumps(m))
    (tmp_path / "calibration.csv").write_text(
        "arch,ece,ece_low,ece_high,ece_scaled,ece_scaled_low,ece_scaled_high\n"
        "lenet5,0.0782,0.0740,0.0820,0.0069,0.0050,0.0098\n")
    (tmp_path / "provenance.json").write_text("{}")
    debug = docs_tables.render("int8-debug", tmp_path)
    assert "| lenet5 | head (FULLY_CONNECTED) | 1.20 | 1 of 2 | none needed | 9 (5 / 3) | " \
           "0.08 / 0.97 |" in debug
    assert "| lenet5 | 0.655 | 0.0782 ±0.0040 → 0.0069 ±0.0024 | 0.0612 → 0.0071 |" in \
        docs_tables.render("calibration", tmp_path)
    assert "| lenet5 | 240.0 | 0.9200 | +0.0000 | 1.5e-06 | 0.030 / 0.020 | 0.050 / 0.040 |" \
        in docs_tables.render("onnx", tmp_path)
    found = {mm: {"clean_accuracy": 0.92, "mca": 0.7, "mca_ci": [0.69, 0.71],
                  "corruptions": dict.fromkeys(CORRUPTIONS, 0.7)} for mm in ("keras", "int8")}
    robustness_table.write([robustness_table.row("lenet5", found, 65 * 1024, "x")],
                           tmp_path / "robustness.csv", tmp_path / "r.md", images=1000)
    table = docs_tables.render("robustness", tmp_path)
    assert "| lenet5 | 65.0 | 0.9200 / 0.9200 | 0.7000 ±0.0100 | 0.7000 ±0.0100 |" in table
    assert "most robust per KB: **lenet5**" in table
