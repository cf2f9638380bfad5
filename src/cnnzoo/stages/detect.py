"""The detection pipeline: detect (train a YOLO v1-style detector on the segmentation scenes'
item boxes) -> detect_evaluate (test mAP@0.5, per-class AP, the boxes figure) -> detect_export
(TFLite, parity gate on mAP)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cnnzoo.config import Params
from cnnzoo.data.serving_input import to_unit
from cnnzoo.files import read_json, write_json
from cnnzoo.stages.common import data_record
from cnnzoo.stages.exporting import gate_and_write
from cnnzoo.stages.training import finish, fit_arrays, trains
from cnnzoo.tracking.client import stage_run

log = logging.getLogger(__name__)


def _load(params: Params, scenes: str, split: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Images and their `detection.ground_truth` boxes."""
    from cnnzoo.data.datasets import MissingDataError
    from cnnzoo.tasks import detection

    path = Path(scenes) / f"{split}.npz"
    if not path.is_file():
        raise MissingDataError(f"{path} not found: run `dvc repro scenes` (or `make run`) first")
    with np.load(path) as f:
        if "boxes" not in f:
            raise ValueError(f"{path} has no item boxes: detection needs generated scenes "
                             "(segment.data.source: scenes)")
        x, boxes = f["x"], f["boxes"]
    return x, detection.ground_truth(boxes, x.shape[1], params.detect.min_visible)


def _counts(truth: list[np.ndarray]) -> np.ndarray:
    """True boxes per scene: the labels logged with the scenes as an MLflow dataset."""
    return np.array([len(t) for t in truth], np.int32)


def _classes(scenes: str) -> list[str]:
    return read_json(Path(scenes) / "meta.json")["classes"][1:]  # no background class


def _hp(params: Params) -> dict:
    """The detector's settings: models.<arch>, the backbone and its own models.<backbone>."""
    cfg = params.detect
    return {**params.model_kwargs(cfg.arch), "backbone": cfg.backbone, "layer": cfg.layer,
            "backbone_settings": params.model_kwargs(cfg.backbone)}


def _build(params: Params, shape, n_classes: int, init: str | None):
    """The detector; with `detect.init: pretrain`, every backbone layer of pretrain@<backbone>
    copied in."""
    from cnnzoo.training.backbones import create_from

    return create_from(params.detect.arch, shape, n_classes, _hp(params),
                       init if params.detect.init == "pretrain" else None)


@trains("scenes", "init")
def detect(params: Params, *, scenes: str, init: str | None, out: str, metrics: str,
           history: str) -> None:
    from cnnzoo.models import yolo
    from cnnzoo.tasks import detection

    cfg = params.detect
    names = _classes(scenes)
    (x, truth), (x_val, truth_val) = _load(params, scenes, "train"), _load(params, scenes, "val")
    grid, boxes = yolo.grid_and_boxes(params.model_kwargs(cfg.arch))
    y, y_val = detection.encode(truth, grid, len(names)), detection.encode(truth_val, grid, len(names))
    kept = int(y[..., 0].sum())
    tracked = {"detect": cfg.model_dump(exclude={"train": {"per_arch"}}), "model": _hp(params),
               "seed": params.base.seed, "train_scenes": len(x), "classes": len(names),
               "init": init if cfg.init == "pretrain" else "scratch"}
    with stage_run("detect", cfg.arch, experiment=params.base.experiment, params=tracked) as run:
        run.log_dataset(x, _counts(truth), name="scenes", source=scenes, context="train")
        objective = detection.objective(grid, boxes, len(names), cfg.lambda_coord, cfg.lambda_noobj,
                                        cfg.class_loss)
        model = fit_arrays(lambda: _build(params, x.shape[1:], len(names), init), x, y, x_val,
                           y_val, cfg.train, params, objective=objective, history=history,
                           key=tracked, run=run, val_batch=64)
        val = detection.score_map(lambda b: model.predict(b, verbose=0), x_val, truth_val, len(names),
                                  boxes, score_threshold=cfg.score_threshold, nms_iou=cfg.nms_iou)
        boxes_total = sum(len(t) for t in truth)
        result = {"val_map50": val["map50"], "train_scenes": len(x), "train_boxes": boxes_total,
                  # YOLO v1 gives a cell one object: boxes whose centre shares a cell with a
                  # larger one are not trained on.
                  "train_boxes_in_shared_cells": boxes_total - kept}
        finish(model, run, out=out, metrics=metrics, history=history, result=result,
               sample=to_unit(x_val[:2]),
               register={"name": f"cnnzoo-{cfg.arch}", "arch": cfg.arch,
                         "what": f"{cfg.arch} detector on {cfg.backbone}",
                         "data": data_record(scenes), "classes": names,
                         "metrics": {"val_map50": result["val_map50"]}})
    log.info("detect %s on %s: validation mAP@0.5 %.4f (%d training boxes, %d in shared cells)",
             cfg.arch, cfg.backbone, result["val_map50"], boxes_total, boxes_total - kept)


def _score(params: Params, predict, x, truth, names, boxes: int, interval: bool = False) -> dict:
    from cnnzoo.tasks import detection

    return detection.score_map(predict, x, truth, len(names), boxes,
                               score_threshold=params.detect.score_threshold,
                               nms_iou=params.detect.nms_iou, interval=interval)


def _boxes_per_cell(model, n_classes: int) -> int:
    return (int(model.output_shape[-1]) - n_classes) // 5


def detect_evaluate(params: Params, *, scenes: str, model: str, metrics: str,
                    figure: str) -> None:
    import keras

    from cnnzoo.tasks import detection
    from cnnzoo.tasks.classification import count_params

    cfg = params.detect
    names = _classes(scenes)
    x, truth = _load(params, scenes, "test")
    with stage_run("detect_evaluate", cfg.arch, experiment=params.base.experiment,
                   params={"test_scenes": len(x), "score_threshold": cfg.score_threshold,
                           "nms_iou": cfg.nms_iou, "min_visible": cfg.min_visible}) as run:
        run.log_dataset(x, _counts(truth), name="scenes", source=scenes, context="test")
        net = keras.models.load_model(model)
        scored = _score(params, lambda b: net.predict(b, verbose=0), x, truth, names,
                        _boxes_per_cell(net, len(names)), interval=True)
        result = {"map50": scored["map50"], "map50_ci": scored["map50_ci"], "classes": names,
                  "ap50": scored["ap"],
                  "test_scenes": len(x), "test_boxes": sum(len(t) for t in truth),
                  **count_params(net), "data": data_record(scenes)}
        write_json(metrics, result)
        n = cfg.figure_scenes
        detection.boxes_figure(x[:n], truth[:n], scored["detections"][:n], names, figure,
                               title=f"{cfg.arch} ({cfg.backbone}) on test scenes: "
                                     f"mAP@0.5 {result['map50']:.3f}")
        run.log_metrics(result)
        run.log_metrics({f"ap50_{i}": v for i, v in enumerate(result["ap50"]) if v is not None})
        run.log_artifact(figure)
    log.info("detect_evaluate %s: test mAP@0.5 %.4f (95%% CI %.4f-%.4f) on %d scenes (%d boxes)",
             cfg.arch, result["map50"], *result["map50_ci"], len(x), result["test_boxes"])


def detect_export(params: Params, *, scenes: str, model: str, out: str, metrics: str,
                  evaluated: str | None = None) -> None:
    """The export variants of the classifiers, gated on mAP@0.5 over the test scenes."""
    import keras

    from cnnzoo.deploy import convert, parity

    cfg, arch = params.export, params.detect.arch
    names = _classes(scenes)
    x, truth = _load(params, scenes, "test")
    x_rep = to_unit(_load(params, scenes, "train")[0][: cfg.representative_samples])
    reference = read_json(evaluated).get("map50") if evaluated else None
    with stage_run("detect_export", arch, experiment=params.base.experiment,
                   params={"export": cfg.model_dump()}) as run:
        run.log_dataset(x, _counts(truth), name="scenes", source=scenes, context="test")
        net = keras.models.load_model(model)
        boxes = _boxes_per_cell(net, len(names))
        files, result = parity.convert_and_score(
            net, convert.VARIANTS, cfg, x_rep=x_rep, metric="map50", name=arch,
            score=lambda predict: _score(params, predict, x, truth, names, boxes)["map50"],
            keras_value=reference)
        grid = int(net.output_shape[1])
        card = {"arch": arch, "task": "detection", "backbone": params.detect.backbone,
                "classes": names,
                "input": {"shape": list(x.shape[1:]), "dtype": "float32", "range": [0.0, 1.0],
                          "normalisation": "pixel / 255"},
                "output": (f"raw {grid}x{grid}x{boxes * 5 + len(names)} grid: per cell {boxes} "
                           "boxes (x, y, sqrt w, sqrt h, confidence; sigmoid) then class logits "
                           "(softmax); cnnzoo.tasks.detection.decode turns it into boxes"),
                "boxes_per_cell": boxes, "score_threshold": params.detect.score_threshold,
                "nms_iou": params.detect.nms_iou}
        gate_and_write(out, metrics, files, result, run, name=arch, metric="map50",
                       max_drop=cfg.max_drop, card=card, labels=names)
    log.info("detect_export %s: %d variants within %.3f mAP@0.5 of Keras %.4f", arch,
             len(files), cfg.max_drop, result["keras_map50"])
