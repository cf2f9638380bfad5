"""Shipping the fine-tuned models: evaluate on task B's test split, export TFLite, report."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cnnzoo.config import Params
from cnnzoo.files import atomic_path, write_json
from cnnzoo.stages.common import experiment_tags
from cnnzoo.tracking import stage_run

log = logging.getLogger(__name__)


def evaluate(params: Params, *, arch: str, prepared: str, model: str, metrics: str,
             confusion: str) -> None:
    import keras

    from cnnzoo.cost import total_macs
    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.evaluate import classification_metrics, count_params, predict_classes
    from cnnzoo.viz import confusion_matrix_plot

    names = load_meta(prepared)["task_b"]["names"]
    x, y = load_split(prepared, "b_test")
    net = keras.models.load_model(model)
    result, cm = classification_metrics(y, predict_classes(net, x), names)
    result.update(count_params(net), macs=total_macs(net), model_bytes=Path(model).stat().st_size,
                  test_images=len(y))
    with stage_run("evaluate", arch, experiment=params.base.experiment,
                   params={"arch": arch, "test_images": len(y)},
                   tags=experiment_tags(params)) as run:
        write_json(metrics, result)
        confusion_matrix_plot(cm, names, confusion,
                              title=f"{arch}: task B test, accuracy {result['accuracy']:.3f}")
        run.log_metrics({k: v for k, v in result.items() if not isinstance(v, dict)})
        run.log_artifact(confusion)
    log.info("evaluate %s: test accuracy %.4f on %d images", arch, result["accuracy"], len(y))


def export(params: Params, *, arch: str, prepared: str, model: str, out: str,
           metrics: str) -> None:
    import keras

    from cnnzoo import export as exporter
    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.evaluate import classification_metrics

    cfg = params.export
    names = load_meta(prepared)["task_b"]["names"]
    x_test, y_test = load_split(prepared, "b_test")
    if cfg.eval_limit:
        x_test, y_test = x_test[: cfg.eval_limit], y_test[: cfg.eval_limit]
    x_test = x_test.astype(np.float32) / 255.0
    # Calibrate int8 ranges on target-task training images (never on the test split).
    x_rep = load_split(prepared, "b_train")[0][: cfg.representative_samples] / np.float32(255.0)
    net = keras.models.load_model(model)
    result, files = {}, exporter.convert_all(net, exporter.VARIANTS, x_rep)
    for variant in exporter.VARIANTS:
        lite = exporter.LiteModel(files[variant])
        scores, _ = classification_metrics(
            y_test, lite.predict_classes(x_test, desc=f"{arch} {variant}"), names)
        result[variant] = {"size_bytes": len(files[variant]), "accuracy": scores["accuracy"],
                           "latency_ms": lite.latency_ms(x_test[0], cfg.latency_runs)}
        log.info("export %s %s: %.1f KB, accuracy %.4f, %.3f ms/image", arch, variant,
                 len(files[variant]) / 1024, scores["accuracy"], result[variant]["latency_ms"])
    result["int8_accuracy_drop"] = result["float32"]["accuracy"] - result["int8"]["accuracy"]
    result["test_images"] = len(y_test)
    if result["int8_accuracy_drop"] > cfg.max_int8_drop:
        raise RuntimeError(
            f"{arch}: int8 quantization lost {result['int8_accuracy_drop']:.4f} accuracy "
            f"(float32 {result['float32']['accuracy']:.4f} -> int8 "
            f"{result['int8']['accuracy']:.4f}), more than export.max_int8_drop="
            f"{cfg.max_int8_drop}")
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for variant, content in files.items():
            (tmp / f"{arch}_{variant}.tflite").write_bytes(content)
        (tmp / "labels.txt").write_text("\n".join(names) + "\n")
    write_json(metrics, result)
    with stage_run("export", arch, experiment=params.base.experiment,
                   params={"export": cfg.model_dump()}, tags=experiment_tags(params)) as run:
        run.log_metrics({f"{v}_{k}": result[v][k] for v in exporter.VARIANTS
                         for k in ("size_bytes", "accuracy", "latency_ms")})
        run.log_metrics({"int8_accuracy_drop": result["int8_accuracy_drop"]})
        for f in sorted(Path(out).iterdir()):
            run.log_artifact(f, folder="tflite")


def report(params: Params, *, metrics_dir: str, md: str, csv: str) -> None:
    from cnnzoo.report import collect, write_report

    rows = collect(params.base.archs, Path(metrics_dir))
    write_report(rows, Path(md), Path(csv), title="cnnzoo leaderboard (task B test split)")
    with stage_run("report", None, experiment=params.base.experiment,
                   params={"archs": params.base.archs}, tags=experiment_tags(params)) as run:
        run.log_artifact(md)
        run.log_artifact(csv)
    log.info("report -> %s", md)
