"""The segmentation pipeline: scenes -> segment (train U-Net) -> segment_evaluate ->
segment_export (TFLite, parity gate on mean IoU)."""

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


def _load(scenes: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    from cnnzoo.data.datasets import MissingDataError

    path = Path(scenes) / f"{split}.npz"
    if not path.is_file():
        raise MissingDataError(f"{path} not found: run `dvc repro scenes` (or `make run`) first")
    with np.load(path) as f:
        return f["x"], f["y"]


def _meta(scenes: str) -> dict:
    return read_json(Path(scenes) / "meta.json")


def scenes(params: Params, *, out: str, cache: str) -> None:
    from cnnzoo.data.scenes import prepare_segmentation

    cfg = params.segment.data
    with stage_run("scenes", None, experiment=params.base.experiment,
                   params={"segment.data": cfg.model_dump(), "source": params.data.source,
                           "seed": params.base.seed}) as run:
        meta = prepare_segmentation(params.data, cfg, params.base.seed, out, cache)
        run.log_metrics({f"{k}_scenes": v for k, v in meta["counts"].items()})
        run.log_metrics({f"pixel_share_{i}": v for i, v in enumerate(meta["pixel_share"].values())})


def _iou_scores(predict, x: np.ndarray, y: np.ndarray, names: list[str]) -> dict:
    from cnnzoo.tasks import segmentation

    masks = segmentation.predict_masks(predict, x)
    return segmentation.scores(segmentation.confusion(y, masks, len(names)), names)


def _hp(params: Params) -> dict:
    """The segmentation model's settings: models.<arch>, and its encoder with the encoder's own
    models.<encoder> unless `segment.init` is plain."""
    cfg = params.segment
    if cfg.init == "plain":
        return params.model_kwargs(cfg.arch)
    return {**params.model_kwargs(cfg.arch), "encoder": cfg.encoder,
            "encoder_settings": params.model_kwargs(cfg.encoder)}


def _build(params: Params, shape, n_classes: int, init: str | None):
    """The model; with `segment.init: pretrain` its encoder's layers from pretrain@<encoder>."""
    from cnnzoo.training.backbones import create_from

    return create_from(params.segment.arch, shape, n_classes, _hp(params),
                       init if params.segment.init == "pretrain" else None)


@trains("scenes", "init")
def segment(params: Params, *, scenes: str, init: str | None, out: str, metrics: str,
            history: str) -> None:
    """Train the segmentation model (`segment.arch`, settings in `models.<arch>`) through the
    one training routine, with the per-pixel objective."""
    from cnnzoo.tasks.segmentation import SEGMENT

    cfg, arch = params.segment.train, params.segment.arch
    names = _meta(scenes)["classes"]
    (x, y), (x_val, y_val) = _load(scenes, "train"), _load(scenes, "val")
    tracked = {"segment": cfg.model_dump(exclude={"per_arch"}), "model": _hp(params),
               "seed": params.base.seed, "train_scenes": len(x), "classes": len(names),
               "init": init if params.segment.init == "pretrain" else params.segment.init}
    with stage_run("segment", arch, experiment=params.base.experiment, params=tracked) as run:
        run.log_dataset(x, y, name="scenes", source=scenes, context="train")
        model = fit_arrays(lambda: _build(params, x.shape[1:], len(names), init),
                           x, y, x_val, y_val, cfg, params, objective=SEGMENT, history=history,
                           key=tracked, run=run, val_batch=64)
        val = _iou_scores(lambda b: model.predict(b, verbose=0), x_val, y_val, names)
        result = {"val_pixel_accuracy": val["pixel_accuracy"], "val_mean_iou": val["mean_iou"],
                  "train_scenes": len(x)}
        finish(model, run, out=out, metrics=metrics, history=history, result=result,
               sample=to_unit(x_val[:2]),
               register={"name": f"cnnzoo-{arch}", "what": f"{arch} segmentation", "arch": arch,
                         "data": data_record(scenes), "classes": names,
                         "metrics": {"val_mean_iou": result["val_mean_iou"]}})
    log.info("segment %s: validation pixel accuracy %.4f, mean IoU %.4f", arch,
             result["val_pixel_accuracy"], result["val_mean_iou"])


def segment_evaluate(params: Params, *, scenes: str, model: str, metrics: str,
                     figure: str) -> None:
    import keras

    from cnnzoo.tasks import segmentation
    from cnnzoo.tasks.classification import count_params

    names = _meta(scenes)["classes"]
    x, y = _load(scenes, "test")
    arch = params.segment.arch
    with stage_run("segment_evaluate", arch, experiment=params.base.experiment,
                   params={"test_scenes": len(x)}) as run:
        run.log_dataset(x, y, name="scenes", source=scenes, context="test")
        net = keras.models.load_model(model)
        predicted = segmentation.predict_masks(lambda b: net.predict(b, verbose=0), x)
        result = {**segmentation.scores(segmentation.confusion(y, predicted, len(names)), names),
                  "mean_iou_ci": segmentation.mean_iou_interval(y, predicted, len(names)),
                  **count_params(net), "test_scenes": len(x), "data": data_record(scenes)}
        write_json(metrics, result)
        n = params.segment.figure_scenes
        segmentation.overlay_figure(
            x[:n], y[:n], predicted[:n], names, figure,
            title=f"{arch} on test scenes: mean IoU {result['mean_iou']:.3f}, "
                  f"pixel accuracy {result['pixel_accuracy']:.3f}")
        run.log_metrics(result)
        run.log_metrics({f"iou_{i}": v for i, v in enumerate(result["iou"]) if v is not None})
        run.log_artifact(figure)
    log.info("segment_evaluate %s: test mean IoU %.4f (95%% CI %.4f-%.4f), pixel accuracy %.4f "
             "on %d scenes", arch, result["mean_iou"], *result["mean_iou_ci"],
             result["pixel_accuracy"], len(x))


def segment_export(params: Params, *, scenes: str, model: str, out: str, metrics: str,
                   evaluated: str | None = None) -> None:
    """The export variants of the classifiers, gated on mean IoU over the test scenes."""
    import keras

    from cnnzoo.deploy import convert, parity

    cfg, arch = params.export, params.segment.arch
    names = _meta(scenes)["classes"]
    x, y = _load(scenes, "test")
    x_rep = to_unit(_load(scenes, "train")[0][: cfg.representative_samples])
    reference = read_json(evaluated).get("mean_iou") if evaluated else None
    with stage_run("segment_export", arch, experiment=params.base.experiment,
                   params={"export": cfg.model_dump()}) as run:
        run.log_dataset(x, y, name="scenes", source=scenes, context="test")
        net = keras.models.load_model(model)
        files, result = parity.convert_and_score(
            net, convert.VARIANTS, cfg, x_rep=x_rep, metric="mean_iou", name=arch,
            score=lambda predict: _iou_scores(predict, x, y, names)["mean_iou"],
            keras_value=reference)
        card = {"arch": arch, "task": "segmentation", "classes": names,
                "input": {"shape": list(x.shape[1:]), "dtype": "float32", "range": [0.0, 1.0],
                          "normalisation": "pixel / 255"},
                "output": "per-pixel logits (H, W, classes); argmax gives the class map"}
        gate_and_write(out, metrics, files, result, run, name=arch, metric="mean_iou",
                       max_drop=cfg.max_drop, card=card, labels=names)
    log.info("segment_export %s: %d variants within %.3f mean IoU of Keras %.4f", arch,
             len(files), cfg.max_drop, result["keras_mean_iou"])
