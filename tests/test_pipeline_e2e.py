"""End to end: `dvc repro` on real Fashion-MNIST with tiny params, in a copy of the project.

Uses the Debian package's files (installed by .ci/run) or $CNNZOO_DATA_MIRROR; never the network.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from PIL import Image

from cnnzoo.deploy.convert import VARIANTS
from cnnzoo.stages.visualize import FIGURES
from cnnzoo.tracking import browser
from tests.conftest import GIT, ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(default_project):
    return default_project  # shared with test_readme's own-data recipe (conftest.py)


def repro(root, env, *args):
    return subprocess.run([sys.executable, "-m", "dvc", "repro", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1500)


def test_bad_architecture_fails_before_any_work(project):
    root, env = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["base"]["archs"] = ["lenet5", "nopenet"]
    (root / "bad.yaml").write_text(yaml.safe_dump(params))
    out = subprocess.run([sys.executable, "pipelines/download.py", "--params", "bad.yaml",
                          "--out", "data/prepared", "--cache", ".cache/datasets"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "nopenet" in out.stderr and "known: alexnet, " in out.stderr
    assert "Traceback" not in out.stderr and not (root / "data" / "prepared").exists()


@pytest.fixture(scope="module")
def ran(project):
    """The tiny pipeline through `cnnzoo run` (what `make run` calls), once. Every test that needs
    its outputs takes this fixture, so it fails (not skips) when the run failed."""
    root, env = project
    first = subprocess.run([sys.executable, "-m", "cnnzoo.cli", "run"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=1500)
    if first.returncode != 0:
        pytest.fail("the end-to-end run failed:\n" + first.stdout[-4000:] + first.stderr[-4000:])
    return root, env, first


def test_dvc_repro_end_to_end(ran):
    """The pipeline's outputs, then the summary `cnnzoo run` prints last."""
    root, env, first = ran
    summary = first.stdout[first.stdout.index("Leaderboard on the task-B test split"):]
    summary = summary.splitlines()
    assert summary[1].split()[:2] == ["arch", "params"]
    assert [line.split()[0] for line in summary[3:5]] == ["lenet5", "mobilenet_v2"]
    assert summary[-2].startswith("Pipeline finished in ") and "make ui" in summary[-1]
    # Quiet logs: no TensorFlow/LiteRT C++ lines (they start with a severity letter and a date).
    noise = [ln for ln in (first.stdout + first.stderr).splitlines()
             if ln[:5] in ("I0000", "W0000", "E0000") or "cpu_feature_guard" in ln
             or ln.startswith(("INFO:tensorflow", "fully_quantize", "INFO: Created"))]
    assert not noise, noise[:5]
    archs = ["lenet5", "mobilenet_v2"]
    expected = ["data/prepared/meta.json", "data/prepared/skipped.txt", "data/augment/policy.json",
                "data/augment/a_train-000.tfrecord", "data/augment/b_train-000.tfrecord",
                "plots/augment/preview.png", "metrics/augment_effect.json",
                "plots/augment_effect/with.csv", "plots/augment_effect/without.csv",
                "reports/leaderboard.md", "reports/leaderboard.csv", "reports/leaderboard.png"]
    for a in archs:
        trained = ("pretrain", "transfer", "finetune", "scratch")
        expected += [f"models/{s}/{a}.keras" for s in trained]
        expected += [f"metrics/{s}/{a}.json" for s in trained]
        expected += [f"plots/{s}/{a}.csv" for s in trained]
        expected += [f"metrics/{a}.json", f"plots/confusion/{a}.png", f"metrics/export/{a}.json",
                     f"exports/{a}/labels.txt", f"exports/{a}/model.json"]
        expected += [f"exports/{a}/{a}_{v}.tflite" for v in VARIANTS]
        expected += [f"exports/{a}/{a}.onnx", f"plots/reliability/{a}.png",
                     f"plots/export/{a}_disagreement.png"]
        expected += [f"plots/visualize/{a}/{f}" for f in FIGURES]
    expected += ["data/scenes/train.npz", "data/scenes/meta.json", "models/segment/unet.keras",
                 "metrics/segment/test.json", "plots/segment/overlay.png",
                 "exports/unet/unet_int8.tflite", "metrics/segment/export.json",
                 "models/detect/yolo.keras", "metrics/detect/test.json", "plots/detect/boxes.png",
                 "exports/yolo/yolo_v1_int8.tflite", "metrics/detect/export.json",
                 "models/verify/embedding.keras", "models/verify/pairs.keras",
                 "metrics/verify/test.json", "plots/verify/roc.png",
                 "exports/embedding/embedding_int8.tflite", "metrics/verify/export.json"]
    missing = [p for p in expected if not (root / p).is_file()
               or ((root / p).stat().st_size == 0 and not p.endswith("skipped.txt"))]
    assert not missing
    # The run's timeline, for `cnnzoo bench`: every stage that ran, with its three clock readings.
    timeline = json.loads((root / ".cache/last-run.json").read_text())
    stages = {s["stage"]: s for s in timeline["stages"]}
    assert timeline["returncode"] == 0 and len(stages) >= 20 and "pretrain@lenet5" in stages
    assert all(timeline["started"] <= s["entered"] <= s["began"] <= s["ended"]
               for s in stages.values())

    meta = json.loads((root / "data/prepared/meta.json").read_text())
    assert meta["counts"]["b_train"] == 5 * 20 and meta["image_shape"] == [32, 32, 1]
    for a in archs:
        ev = json.loads((root / f"metrics/{a}.json").read_text())
        ex = json.loads((root / f"metrics/export/{a}.json").read_text())
        assert 0.0 <= ev["accuracy"] <= 1.0 and ev["test_images"] == 100
        assert ev["params"] > 0 and ev["model_bytes"] > 0
        assert ev["accuracy_ci"][0] <= ev["accuracy"] <= ev["accuracy_ci"][1]  # 95%, bootstrap
        for v in VARIANTS:
            assert 0.0 <= ex[v]["accuracy"] <= 1.0 and ex[v]["size_bytes"] > 0
            assert ex[v]["drop"] == pytest.approx(ex["keras_accuracy"] - ex[v]["accuracy"])
        assert ex["keras_accuracy"] == ev["accuracy"] and ex["test_images"] == 100
        assert ex["int8"]["size_bytes"] < ex["float32"]["size_bytes"]
        # Calibration, the int8 debugger's table, disagreement and the second runtime.
        assert ev["ece_ci"][0] <= ev["ece"] <= ev["ece_ci"][1] and ev["temperature"] > 0
        assert ex["temperature"] == ev["temperature"]
        assert ex["int8"]["layers"] and ex["int8"]["worst_layer"]["rmse_scale"] == max(
            e["rmse_scale"] for e in ex["int8"]["layers"])
        assert 0 <= ex["disagreement"]["count"] <= 100
        assert ex["onnx"]["max_abs_logit_diff_float32"] < 1e-3
        card = json.loads((root / f"exports/{a}/model.json").read_text())
        assert card["input"]["source_size"] == [28, 28]
        assert card["temperature"] == ev["temperature"] and card["onnx"]["file"] == f"{a}.onnx"
        for s in ("transfer", "finetune", "scratch"):  # 10 labels per class of the pool of 20
            m = json.loads((root / f"metrics/{s}/{a}.json").read_text())
            assert m["train_images"] == 50 and 0.0 <= m["test_accuracy"] <= 1.0
            assert m["test_accuracy_correct"]["n"] == 100  # per-image: the paired gain interval
    report = (root / "reports/leaderboard.md").read_text()
    assert all(f"| {a} |" in report for a in archs)
    assert "| acc scratch | acc linear probe | acc fine-tuned | transfer gain |" in report
    row = next(line for line in report.splitlines() if line.startswith("| lenet5 |"))
    # 5 accuracies and 2 ECEs, and the paired gain; mCA cells stay empty until `make robustness`
    assert row.count(" ±0.") == 7 and " [" in row
    assert "## Where int8 loses (quantization debugger)" in report
    assert "Not measured for these models yet: `make robustness`" in report
    assert "## Mobile export" in report and "| lenet5 | dynamic_int8 |" in report
    assert "Not computed yet: `make sizes`" in report
    seg = json.loads((root / "metrics/segment/test.json").read_text())
    assert seg["test_scenes"] == 24 and 0.0 <= seg["mean_iou"] <= 1.0
    assert seg["mean_iou_ci"][0] <= seg["mean_iou"] <= seg["mean_iou_ci"][1]
    assert len(seg["iou"]) == 11 and seg["classes"][0] == "background"
    found = json.loads((root / "metrics/detect/test.json").read_text())
    assert found["test_scenes"] == 24 and 0.0 <= found["map50"] <= 1.0
    assert len(found["ap50"]) == len(found["classes"]) == 10
    det_export = json.loads((root / "metrics/detect/export.json").read_text())
    assert det_export["keras_map50"] == found["map50"] and det_export["metric"] == "map50"
    ver = json.loads((root / "metrics/verify/test.json").read_text())
    assert ver["test_images"] == 60 and ver["pairs"] == 60 * 59 // 2
    assert all(0.0 <= ver[m]["auc"] <= 1.0 for m in ("triplet", "binary", "raw_pixels"))
    assert all(len(ver[m][f"{k}_ci"]) == 2 for m in ("triplet", "raw_pixels")
               for k in ("auc", "eer", "tar_at_far_0.001", "one_shot_accuracy"))
    assert "map50_ci" in found
    assert "## Segmentation (U-Net" in report and "## Verification (one-shot" in report
    assert "## Detection (YOLO v1-style, test scenes)" in report
    assert "Detection (YOLO v1-style, test scenes): mAP@0.5" in first.stdout
    assert "Segmentation (U-Net, test scenes): mean IoU" in first.stdout
    assert "Verification on unseen classes: AUC" in first.stdout
    effect = json.loads((root / "metrics/augment_effect.json").read_text())
    assert effect["arch"] == "lenet5" and 0 <= effect["accuracy_with"] <= 1
    assert f"{effect['accuracy_with']:.4f} / {effect['accuracy_without']:.4f}" in report

    # `dvc plots show` renders the CSV curves (Vega, from a CDN) and every PNG.
    shown = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", "dvc_plots"],
                           cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    html = (root / "dvc_plots/index.html").read_text()
    assert all(f"visualize/{a}/{f}" in html for a in archs for f in FIGURES)
    assert "plots/pretrain/lenet5.csv" in html and "leaderboard.png" in html

    # `make sizes`: the sizes stage (tiny params: one small network), then the report again.
    sized = subprocess.run([sys.executable, "-m", "cnnzoo.cli", "sizes"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=600)
    assert sized.returncode == 0, sized.stdout[-3000:] + sized.stderr[-3000:]
    assert any(line.startswith("mobilenet_v2 ") for line in sized.stdout.splitlines())
    report = (root / "reports/leaderboard.md").read_text()
    assert "## Deployment sizes" in report and "| mobilenet_v2 |" in report
    assert (root / "plots/sizes.png").stat().st_size > 0

    db = sqlite3.connect(root / "mlflow.db")
    runs = dict(db.execute("SELECT name, status FROM runs").fetchall())
    stages = ["pretrain", "transfer", "finetune", "scratch", "evaluate", "export", "visualize"]
    want = ({"download", "augment", "augment_effect-lenet5", "report", "sizes", "scenes",
             "segment-unet", "segment_evaluate-unet", "segment_export-unet", "detect-yolo_v1",
             "detect_evaluate-yolo_v1", "detect_export-yolo_v1", "verify-lenet5",
             "verify_pairs-lenet5", "verify_evaluate-lenet5", "verify_export-lenet5"}
            | {f"{s}-{a}" for s in stages for a in archs})
    assert want <= set(runs) and all(runs[n] == "FINISHED" for n in want)
    tags = dict(db.execute("SELECT t.key, t.value FROM tags t JOIN runs r ON t.run_uuid = r.run_uuid"
                           " WHERE r.name = 'finetune-lenet5'").fetchall())
    assert tags["stage"] == "finetune" and tags["arch"] == "lenet5" and tags["git_commit"]
    assert tags["strategy"] == "fine_tune_top" and tags["weights"] == "scratch"
    assert tags["labels_per_class"] == "10"
    # Training, evaluation and export runs log their data as MLflow inputs (the Dataset column).
    inputs = set(db.execute("SELECT r.name, d.name, it.value FROM inputs i JOIN runs r ON"
                            " i.destination_id = r.run_uuid JOIN datasets d ON i.source_id ="
                            " d.dataset_uuid JOIN input_tags it ON it.input_uuid = i.input_uuid"
                            " WHERE it.name = 'mlflow.data.context'").fetchall())
    assert {("pretrain-lenet5", "fashion_mnist:task_A", "train"),
            ("finetune-lenet5", "fashion_mnist:task_B", "validation"),
            ("evaluate-mobilenet_v2", "fashion_mnist:task_B", "test"),
            ("export-lenet5", "fashion_mnist:task_B", "test"),
            ("segment-unet", "scenes", "train")} <= inputs
    alias = db.execute("SELECT name, alias FROM registered_model_aliases").fetchall()
    assert ("cnnzoo-mobile", "mobile") in alias  # the committed default run ships
    # Every registered version says what it is and what data it learned from.
    versions = db.execute("SELECT name, description FROM model_versions").fetchall()
    assert {"cnnzoo-mobile", "cnnzoo-lenet5", "cnnzoo-mobilenet_v2", "cnnzoo-unet",
            "cnnzoo-yolo_v1"} <= {name for name, _ in versions}
    assert all(text and "fashion_mnist" in text for _, text in versions), versions
    tags = db.execute("SELECT v.name, t.key, t.value FROM model_version_tags t JOIN "
                      "model_versions v ON t.name = v.name AND t.version = v.version").fetchall()
    by_name = {name: {k: v for n, k, v in tags if n == name} for name, _ in versions}
    assert all({"arch", "data_source", "data_digest", "classes", "git_commit",
                "dvc_experiment"} <= set(t) for t in by_name.values()), by_name
    assert by_name["cnnzoo-mobile"]["data_source"] == "fashion_mnist"
    n_epoch_metrics = db.execute("SELECT COUNT(*) FROM metrics m JOIN runs r ON m.run_uuid ="
                                 " r.run_uuid WHERE r.name = 'pretrain-lenet5'"
                                 " AND m.key = 'val_accuracy'").fetchone()[0]
    assert n_epoch_metrics >= 1

    # Nothing left to do for what `make run` and `make sizes` reproduce (the robustness stage,
    # which a bare `dvc repro` would run too, is `make robustness`'s: its test is below).
    second = repro(root, env, "report", "sizes")
    assert second.returncode == 0 and "Running stage" not in second.stdout, second.stdout


def test_predict_agrees_with_keras_on_exported_models(ran, tmp_path, capsys):
    """`cnnzoo predict` on real test images as 28x28 PNGs (the dataset's own files' size)."""
    root, _, _ = ran
    import keras
    import numpy as np
    from PIL import Image

    from cnnzoo.cli import main
    from cnnzoo.data.datasets import load_split

    x, _ = load_split(root / "data/prepared", "b_test")
    pngs = []
    for i, img in enumerate(x[:20]):
        pngs.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(img[2:30, 2:30, 0], "L").save(pngs[-1])  # undo the 28 -> 32 padding
    names = json.loads((root / "exports/lenet5/model.json").read_text())["classes"]
    want = np.argmax(keras.models.load_model(root / "models/finetune/lenet5.keras")
                     .predict(x[:20].astype("float32") / 255, verbose=0), axis=1)
    for model in ("exports/lenet5/lenet5_float32.tflite", "models/finetune/lenet5.keras"):
        assert main(["predict", str(root / model), *pngs, "-k", "1",
                     "--card", str(root / "exports/lenet5/model.json")]) == 0
        got = [line.split(": ")[1].rsplit(" ", 1)[0]
               for line in capsys.readouterr().out.splitlines()]
        assert got == [names[i] for i in want]
    # Dark items on a light background (the opposite of the training images): a warning, and
    # --invert brings back the predictions of the originals.
    inverted = []
    for i, png in enumerate(pngs[:4]):
        inverted.append(str(tmp_path / f"inv{i}.png"))
        Image.open(png).point(lambda v: 255 - v).save(inverted[-1])
    card = ["--card", str(root / "exports/lenet5/model.json")]
    lite = str(root / "exports/lenet5/lenet5_float32.tflite")
    assert main(["predict", lite, *inverted, "-k", "1", *card]) == 0
    err = capsys.readouterr().err
    assert err.count("a light background") == 4 and "--invert" in err
    assert main(["predict", lite, *inverted, "-k", "1", "--invert", *card]) == 0
    out = capsys.readouterr()
    assert not out.err and [ln.split(": ")[1].rsplit(" ", 1)[0] for ln in out.out.splitlines()] \
        == [names[i] for i in want[:4]]


def test_the_shipped_model_takes_any_image_in_python_and_over_http(ran, tmp_path):
    """models:/cnnzoo-mobile@mobile through mlflow.pyfunc and `mlflow models serve`: grey 28x28
    uint8 (the dataset's own files), the same as RGB floats at another size, and input that is
    not images failing in one line that names its shape."""
    root, env, _ = ran
    import mlflow
    import numpy as np

    from cnnzoo.data.datasets import load_split

    x, y = load_split(root / "data/prepared", "b_test")
    grey = x[:8, 2:30, 2:30, 0]  # undo the 28 -> 32 padding: the dataset's own images
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/cnnzoo-mobile@mobile")
    probs = model.predict(grey)
    assert probs.shape == (8, 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-3)
    # Calibrated by model.json's temperature: softmax(logits / T), whose logits (up to a
    # constant) are the log of what T = 1 gives.
    inner = model.unwrap_python_model()
    t = inner.card["temperature"]
    inner.card = {**inner.card, "temperature": 1.0}
    raw = model.predict(grey).to_numpy()
    inner.card = {**inner.card, "temperature": t}
    scaled = np.exp(np.log(raw) / t)
    assert t != 1.0 and np.allclose(probs.to_numpy(), scaled / scaled.sum(1, keepdims=True),
                                    atol=1e-4)
    rgb = np.repeat(np.repeat(grey, 2, axis=1), 2, axis=2)[..., None].repeat(3, axis=-1) / 255.0
    again = model.predict(rgb.astype(np.float32))  # 56x56 RGB floats: resized, then grey
    assert (again.to_numpy().argmax(1) == probs.to_numpy().argmax(1)).mean() >= 0.75
    with pytest.raises(Exception, match=r"images of shape \(2, 3, 28, 28, 1\): expected") as err:
        model.predict(np.zeros((2, 3, 28, 28, 1), np.float32))
    assert "\n" not in str(err.value)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                               "models:/cnnzoo-mobile@mobile", "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], cwd=root,
                              env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        for _ in range(120):
            try:
                reply = _post(url, {"inputs": grey.tolist()})
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("mlflow models serve did not answer within 2 minutes")
        served = np.array([[row[c] for c in probs.columns] for row in reply["predictions"]])
        np.testing.assert_allclose(served, probs.to_numpy(), atol=1e-5)
        with pytest.raises(urllib.error.HTTPError) as bad:
            _post(url, {"inputs": np.zeros((1, 2, 28, 28, 1)).tolist()})
        # MLflow's server answers 400 with its own generic message, and the cause (no input dump)
        # as the last line of the stack trace it returns.
        answer = json.loads(bad.value.read())
        assert bad.value.code == 400 and len(answer["message"]) < 300
        assert "InputShapeError: images of shape (1, 2, 28, 28, 1): expected" in \
            answer["stack_trace"].strip().splitlines()[-1]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_bench_data_reports_both_rates(ran):
    """Runs after the end-to-end test (same project). Speed targets are checked by `make bench`,
    not here: this only checks the benchmark runs and reports."""
    root, env, _ = ran
    out = subprocess.run([sys.executable, "-m", "cnnzoo.cli", "bench", "data", "--batches", "3"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode in (0, 1), out.stderr[-2000:]  # 1 = ran, target ratio not met
    assert "input pipeline" in out.stdout and "training step" in out.stdout
    assert "lenet5" in out.stdout  # the fastest configured model



def test_mlflow_ui_in_a_browser(ran, tmp_path):
    """Headless Debian Chromium (scripts/install-browser.sh; no browser download) through the UI
    users open with `make ui`, on the store the end-to-end run made: the experiment's runs table
    in the model-training view, filters on the stage and arch tags, a run's metrics and its
    .tflite and PNG artifacts, the registered model's versions. Screenshots go to
    $CNNZOO_SCREENSHOTS (default: the test's tmp dir)."""
    root, env, _ = ran
    if why := browser.missing_browser():
        pytest.skip(why)
    db = sqlite3.connect(root / "mlflow.db")
    exp_id = db.execute("SELECT experiment_id FROM experiments WHERE name = 'cnnzoo'").fetchone()[0]
    run_ids = dict(db.execute("SELECT name, run_uuid FROM runs").fetchall())
    # The link `make run` prints opens the experiment's runs in the model-training view.
    link = subprocess.run([sys.executable, "-c", "from pathlib import Path; from cnnzoo.tools.runner "
                           "import ui_url; print(ui_url(Path('.')))"], cwd=root, env=env,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert link.endswith(f"/#/experiments/{exp_id}/runs?workflowType=machine_learning")
    shots = Path(os.environ.get("CNNZOO_SCREENSHOTS") or tmp_path)
    with browser.mlflow_ui(root / "mlflow.db", cwd=root, env=env) as url:
        ui = browser.Browser(url, shots)
        try:
            # Model-training view: the sidebar has the model registry, not the GenAI judges.
            text = ui.page(f"/experiments/{exp_id}/runs", "Model registry", "Run Name",
                           "Dataset", "report", shot="mlflow_runs.png")
            assert "Judges" not in text
            # Filtering on the stage tag keeps that stage's runs (one per arch), with their data.
            query = urllib.parse.quote("tags.stage = 'finetune'")
            text = ui.page(f"/experiments/{exp_id}/runs?searchFilter={query}",
                           "finetune-mobilenet_v2", "finetune-lenet5", "fashion_mnist:task_B")
            assert "pretrain-lenet5" not in text and "export-lenet5" not in text
            query = urllib.parse.quote("tags.arch = 'lenet5'")
            text = ui.page(f"/experiments/{exp_id}/runs?searchFilter={query}",
                           "pretrain-lenet5", "export-lenet5", "visualize-lenet5")
            assert "finetune-mobilenet_v2" not in text
            # A run page: its metrics; then its TFLite files and a PNG among the artifacts.
            export = run_ids["export-lenet5"]
            ui.page(f"/experiments/{exp_id}/runs/{export}", "int8_accuracy",
                    "float32_size_bytes", shot="mlflow_run.png")
            ui.page(f"/experiments/{exp_id}/runs/{export}/artifacts/tflite/lenet5_int8.tflite",
                    "lenet5_float32.tflite", "lenet5_int8.tflite", "model.json")
            visual = run_ids["visualize-lenet5"]
            ui.page(f"/experiments/{exp_id}/runs/{visual}/artifacts/visualize/filters.png",
                    "filters.png", "gradcam.png", "maximization.png",
                    shot="mlflow_artifacts.png")
            with Image.open(root / "plots/visualize/lenet5/filters.png") as png:
                assert ui.shows_image(png.width)  # the picture itself is on the page
            # The registered model page lists its versions and the @mobile alias.
            ui.page("/models/cnnzoo-mobile", "Version 1", "mobile", shot="mlflow_model.png")
        finally:
            ui.close()


def test_same_params_and_seed_give_byte_identical_metrics(ran, tmp_path):
    """Determinism on CPU (base.deterministic, seeded): the pretraining stage, run again twice
    as cold processes, writes the very bytes of the end-to-end run's metrics JSON and per-epoch
    history (which it ran in the warm launcher's fork)."""
    root, env, _ = ran
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'again.db'}"}
    for again in ("a", "b"):
        out = subprocess.run([sys.executable, "pipelines/train.py", "pretrain", "--arch", "lenet5",
                              "--prepared", "data/prepared", "--augmented", "data/augment",
                              "--out", str(tmp_path / f"{again}.keras"),
                              "--metrics", str(tmp_path / f"{again}.json"),
                              "--history", str(tmp_path / f"{again}.csv")],
                             cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        assert (tmp_path / f"{again}.json").read_bytes() == \
            (root / "metrics/pretrain/lenet5.json").read_bytes()
        assert (tmp_path / f"{again}.csv").read_bytes() == \
            (root / "plots/pretrain/lenet5.csv").read_bytes()


def test_a_stage_killed_mid_epoch_resumes_to_the_same_metrics(ran, tmp_path):
    """SIGKILL `dvc repro` inside pretrain@lenet5's training, on params DVC has not seen (a
    backup taken at every epoch end): the stage leaves no output DVC takes as complete, and the
    next plain `dvc repro` resumes from the backup to the very bytes of the metrics and history
    of an uninterrupted run with the same params and seed."""
    root, env, _ = ran
    metrics, history = root / "metrics/pretrain/lenet5.json", root / "plots/pretrain/lenet5.csv"
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'resume.db'}",
           "CNNZOO_BACKUP_EVERY_S": "0"}
    original = (root / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["pretrain"]["per_arch"]["lenet5"]["learning_rate"] = 0.002  # new to DVC's caches
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--single-item",
                                 "pretrain@lenet5"], cwd=root, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not (backups := list(root.glob(".cache/backup/pretrain-lenet5-*/state/"
                                             "training_metadata.json"))):
            assert proc.poll() is None and time.monotonic() < deadline, "no backup was taken"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage: a power cut, not a clean stop
        proc.wait()
        done = json.loads(backups[0].read_text())["epoch"]
        logged = len((backups[0].parent.parent / "history.csv").read_text().splitlines()) - 1
        assert 1 <= done <= logged < 3  # killed after a backup, before the last epoch ended
        assert not metrics.exists()
        status = subprocess.run([sys.executable, "-m", "dvc", "status", "pretrain@lenet5"],
                                cwd=root, env=env, capture_output=True, text=True,
                                timeout=300).stdout
        assert "deleted:" in status and "metrics/pretrain/lenet5.json" in status

        out = repro(root, env, "--single-item", "pretrain@lenet5")
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"resuming lenet5 after epoch {done} of 3" in out.stderr
        assert not list(root.glob(".cache/backup/pretrain-lenet5-*"))  # removed once complete
        resumed = metrics.read_bytes(), history.read_bytes()

        # The uninterrupted run: the same stage again from scratch (DVC would restore it now).
        out = repro(root, env, "--single-item", "--force", "pretrain@lenet5")
        assert out.returncode == 0, out.stderr[-3000:]
        assert "resuming" not in out.stderr
        assert resumed == (metrics.read_bytes(), history.read_bytes())
    finally:  # back to the end-to-end run's params and outputs (from DVC's cache)
        (root / "params.yaml").write_text(original)
        assert repro(root, env, "--single-item", "pretrain@lenet5").returncode == 0


def _kill_after_a_backup(root, env, stage: str, run_name: str) -> Path:
    """Start `dvc repro --force` of `stage`, SIGKILL dvc and the stage once its backup exists
    (CNNZOO_BACKUP_EVERY_S=0 in `env`), and return the backup's folder."""
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force", "--single-item",
                             stage], cwd=root, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (found := list(root.glob(f".cache/backup/{run_name}-*/state/"
                                       "training_metadata.json"))):
        assert proc.poll() is None and time.monotonic() < deadline, "no backup was taken"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return found[0].parent.parent


def test_a_backup_made_on_other_data_is_discarded_not_resumed(ran, tmp_path):
    """Kill pretrain@lenet5 after a backup, change the augmentation and rerun `augment`: the
    stage then discards the backup, saying which input changed, and writes the very bytes of an
    uninterrupted run on the new data (model, metrics, history). A killed run's backup whose
    params come back, so that DVC restores the outputs from its run cache without running our
    code, is removed by `cnnzoo run`, not left for a later run to resume."""
    root, env, _ = ran
    outs = [root / "models/pretrain/lenet5.keras", root / "metrics/pretrain/lenet5.json",
            root / "plots/pretrain/lenet5.csv"]
    trained = [p.read_bytes() for p in outs]
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'stale.db'}",
           "CNNZOO_BACKUP_EVERY_S": "0"}
    original = (root / "params.yaml").read_text()
    try:
        backup = _kill_after_a_backup(root, env, "pretrain@lenet5", "pretrain-lenet5")
        params = yaml.safe_load(original)
        params["augment"]["crop_padding"] = 3  # new augmented copies
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        assert repro(root, env, "--single-item", "augment").returncode == 0
        out = repro(root, env, "--single-item", "pretrain@lenet5")
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"discarding the backup in {backup.relative_to(root)}: input data/augment " \
            "changed" in out.stderr
        assert "resuming" not in out.stderr
        on_new_data = [p.read_bytes() for p in outs]
        assert on_new_data[1] != trained[1]
        out = repro(root, env, "--single-item", "--force", "pretrain@lenet5")  # uninterrupted
        assert out.returncode == 0 and "discarding" not in out.stderr
        assert [p.read_bytes() for p in outs] == on_new_data

        (root / "params.yaml").write_text(original)
        assert repro(root, env, "--single-item", "augment").returncode == 0  # from the cache
        backup = _kill_after_a_backup(root, env, "pretrain@lenet5", "pretrain-lenet5")
        out = subprocess.run([sys.executable, "-m", "cnnzoo.cli", "run", "--single-item",
                              "pretrain@lenet5"], cwd=root, env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "is cached - skipping run" in out.stdout + out.stderr  # no code of ours ran
        assert not backup.exists() and not list(root.glob(".cache/backup/*"))
        assert [p.read_bytes() for p in outs] == trained
    finally:
        (root / "params.yaml").write_text(original)
        assert repro(root, env, "--single-item", "augment", "pretrain@lenet5").returncode == 0


def test_rerunning_under_another_hash_seed_leaves_dvc_status_clean(ran):
    """`augment` and a training stage rerun from scratch under two PYTHONHASHSEEDs write the
    same bytes (TFRecords, .keras, JSON, CSV, PNG), so nothing downstream goes out of date."""
    root, env, _ = ran
    for seed in ("1", "3"):  # protobuf orders map keys differently under these two
        out = repro(root, {**env, "PYTHONHASHSEED": seed}, "--force", "--single-item", "augment",
                    "pretrain@lenet5")
        assert out.returncode == 0, out.stderr[-3000:]
        status = subprocess.run([sys.executable, "-m", "dvc", "status", "--with-deps", "report"],
                                cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert "Data and pipelines are up to date" in status.stdout, status.stdout[-3000:]


def test_a_stage_in_its_own_process_loads_a_saved_network(ran):
    """Plain `dvc repro` runs every stage in a process of its own (no `cnnzoo run` launcher with
    the project's modules imported): segment_evaluate still loads the U-Net, whose fused
    BatchNorm layers Keras finds only once cnnzoo.models has registered them."""
    root, env, _ = ran
    out = repro(root, env, "--force", "--single-item", "segment_evaluate@unet")
    assert out.returncode == 0, out.stderr[-3000:]


def _changed_by(root, env, path: str) -> set[str]:
    """The stages `dvc status` says an edit under `path` put out of date (their changed deps).
    Only stages that have run count: DVC lists every dep of a never-run stage (`robustness`,
    off `make run`'s path, until its own test runs it) as modified, edit or not."""
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stderr[-2000:]
    locked = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {stage for stage, entries in json.loads(status.stdout or "{}").items()
            if stage in locked and any(dep.startswith(path) for e in entries if isinstance(e, dict)
                                       for dep in e.get("changed deps", {}))}


def test_editing_the_shared_training_code_puts_every_training_stage_out_of_date(ran):
    """The cache knows its code: an edit to the helpers every training stage runs (not to a
    stage's own module) is the `code` stage's changed dep; once it runs, the fingerprints it
    changed put exactly the stages that run the file out of date, and none that does not."""
    root, env, _ = ran
    shared = root / "src/cnnzoo/stages/training.py"
    original = shared.read_bytes()
    assert not _changed_by(root, env, "src/cnnzoo/stages/training.py")
    try:
        shared.write_bytes(original + b"\n# an edit\n")
        assert _changed_by(root, env, "src/cnnzoo/stages/training.py") == {"code"}
        assert repro(root, env, "--single-item", "code").returncode == 0
        changed = _changed_by(root, env, "data/code/")
    finally:
        shared.write_bytes(original)
        assert repro(root, env, "--single-item", "code").returncode == 0
    trained = {f"{s}@{a}" for s in ("pretrain", "transfer", "finetune", "scratch")
               for a in ("lenet5", "mobilenet_v2")}
    trained |= {"augment_effect", "segment@unet", "segment_evaluate@unet", "segment_export@unet",
                "scenes@unet", "detect@yolo_v1", "detect_evaluate@yolo_v1",
                "detect_export@yolo_v1", "verify@siamese", "verify_pairs@siamese",
                "verify_evaluate@siamese", "verify_export@siamese"}
    assert changed == trained  # scenes and the evaluations share their pipeline's script
    assert not _changed_by(root, env, "data/code/")


def test_a_fresh_clone_pulls_the_outputs_from_a_dvc_remote_and_trains_nothing(ran, tmp_path):
    """`dvc push` to a local-directory remote (the README's set-up, with a folder for the S3/SSH
    URL), `git clone`, `dvc pull`: every stage of `make run` is up to date in the clone, so its
    `dvc repro` runs none, and the pulled metrics are the trained ones."""
    root, env, _ = ran

    def run(cwd, *cmd):
        out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, (cmd, out.stdout[-2000:], out.stderr[-2000:])
        return out.stdout + out.stderr

    dvc = (sys.executable, "-m", "dvc")
    run(root, *dvc, "remote", "add", "-d", "storage", str(tmp_path / "remote"))
    assert "pushed" in run(root, *dvc, "push", "--with-deps", "report")
    with open(root / ".gitignore", "a") as f:  # the project's own: no store, caches or plots
        f.write("\n" + (ROOT / ".gitignore").read_text() + "\n/dvc_plots/\n/bad.yaml\n")
    run(root, *GIT, "add", "-A")
    run(root, *GIT, "commit", "-q", "-m", "pipeline")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(root), str(clone))
    assert not (clone / "metrics").exists() and not (clone / "mlflow.db").exists()

    run(clone, *dvc, "pull", "--with-deps", "report")
    assert "Data and pipelines are up to date" in run(clone, *dvc, "status", "--with-deps",
                                                     "report")
    repro = run(clone, *dvc, "repro", "report")
    assert "Running stage" not in repro and "didn't change, skipping" in repro
    for rel in ("metrics/lenet5.json", "metrics/export/mobilenet_v2.json",
                "exports/lenet5/lenet5_int8.tflite", "models/finetune/lenet5.keras"):
        assert (clone / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_bench_train_puts_each_architecture_next_to_plain_keras(ran, tmp_path):
    """`cnnzoo bench train --quick` on the end-to-end run's data: one row per architecture with
    the project's and plain Keras' training rates, their ratio, the FLOP/s fraction of the
    matmul rate measured in the same run, and the export stage's LiteRT latencies."""
    root, env, _ = ran
    out = subprocess.run([sys.executable, "-m", "cnnzoo.cli", "bench", "train", "--quick",
                          "--archs", "lenet5", "--out", str(tmp_path / "bench")], cwd=root,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "bench/results.json").read_text())
    (row,) = result["archs"]
    assert row["arch"] == "lenet5" and row["batch_size"] == 16 and row["macs"] > 0
    for key in ("project_images_per_s", "keras_images_per_s", "inference_images_per_s"):
        s = row[key]
        assert s["n"] == 3 and 0 < s["min"] <= s["median"] <= s["max"], key
    assert row["ratio_to_keras"] == row["pair_ratios"]["median"] > 0
    assert row["pair_ratios"]["n"] == 3 and row["stock_layers_in_reference"] == 0  # no BN
    assert row["steps_per_epoch"] % row["steps_per_execution"] == 0
    assert row["train_flops_fraction_of_matmul"] == pytest.approx(
        6 * row["macs"] * row["project_images_per_s"]["median"]
        / result["matmul_flops"]["median"])
    export = json.loads((root / "metrics/export/lenet5.json").read_text())
    assert row["litert_batch1_ms"]["int8"] == export["int8"]["latency"]["1t_median_ms"]
    assert row["peak_rss_mib"] > 100  # TensorFlow alone takes more
    # The end-to-end test's `cnnzoo run`, split by stage (its timeline in .cache/last-run.json).
    run = result["make_run"]
    assert run["stages"] >= 20 and run["groups"]["pretrain"]["stages"] == 2
    assert 0 < run["work_s"] + run["fixed_s"] <= run["wall_s"]
    md = (tmp_path / "bench/results.md").read_text()
    assert any(line.startswith("| lenet5 | 16 | ") for line in md.splitlines())
    assert "| pretrain | 2 | " in md and md.strip() in out.stdout


def test_make_robustness_adds_mca_to_the_leaderboard(ran):
    """`cnnzoo robustness` (make robustness): the stage, then the report forced, with mCA for
    both families (Keras and int8) in the leaderboard and the per-corruption table. Last in this
    module: it rewrites the report the tests above read."""
    root, env, _ = ran
    out = subprocess.run([sys.executable, "-m", "cnnzoo.cli", "robustness"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    from cnnzoo.files import read_csv

    rows = {r["arch"]: r for r in read_csv(root / "reports/robustness.csv")}
    assert set(rows) == {"lenet5", "mobilenet_v2"}
    for r in rows.values():
        for model in ("keras", "int8"):
            assert float(r[f"{model}_mca_low"]) <= float(r[f"{model}_mca"]) \
                <= float(r[f"{model}_mca_high"])
    md = (root / "reports/leaderboard.md").read_text()
    assert "## Robustness to corruptions" in md and "most robust per KB" in md
    head = next(line for line in md.splitlines() if line.startswith("| architecture | params"))
    col = head.split(" | ").index("mCA int8")
    for arch in rows:
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {arch} | "))
        assert line.split(" | ")[col].startswith(f"{float(rows[arch]['int8_mca']):.4f} ±")
    assert (root / "plots/robustness.png").stat().st_size > 10_000
