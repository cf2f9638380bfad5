"""The classification pipeline's training stages.

pretrain (task A from scratch, or ImageNet weights) -> transfer (linear probe: a new head on
features of the frozen backbone, computed once) -> finetune (what `transfer.strategy` says),
and the baseline `scratch` (task B from random weights, same images and epochs as finetune).
All of them go through `stages.training.fit` (the one loop); the B stages record their test
accuracy for the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnzoo.config import Params, TrainConfig
from cnnzoo.data.serving_input import to_unit
from cnnzoo.files import write_json, write_text
from cnnzoo.stages.common import data_record, experiment_tags, log_data
from cnnzoo.stages.training import (
    TaskB,
    augmented_copies,
    calibration_set,
    finish,
    fit,
    task_b,
    training_data,
    trains,
)
from cnnzoo.tracking.client import Run, stage_run

log = logging.getLogger(__name__)


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy. A model that `loop.fit` compiled evaluates with the test step it has
    already traced (a fresh `predict` trace costs seconds per stage on a 2-core CPU)."""
    from cnnzoo.data.datasets import make_dataset
    from cnnzoo.tasks.classification import predict_classes

    if model.compiled:
        ds = make_dataset(x, y, batch_size=256, num_classes=model.output_shape[-1])
        return float(model.evaluate(ds, verbose=0, return_dict=True)["accuracy"])
    return float(np.mean(predict_classes(model, x) == y))


def _fit(build: Callable, x, y, x_val, y_val, cfg: TrainConfig, params: Params, *, task: str,
         k: int, augmented: str, history: str, key: dict, run: Run, calibrate: bool,
         pool: np.ndarray | None = None):
    """Train `build()` on (x, y) (augmented copies when cfg.augment), the epochs planned for the
    number of images. `calibrate` re-estimates the BatchNorm statistics that training updated
    (from scratch, or fine-tuning with adapt_batchnorm; frozen layers are left alone), on the
    training images or, with cfg.bn_recalibration_pool, on `pool` (task B's unlabelled pool)."""
    from cnnzoo.data.datasets import make_dataset

    log_data(run, params, x, y, f"task {task.upper()}", "train")
    log_data(run, params, x_val, y_val, f"task {task.upper()}", "validation")
    seed = params.base.seed
    train = training_data(x, y, task=task, num_classes=k, cfg=cfg, augmented=augmented, seed=seed)
    calibration = None
    if calibrate:
        on_pool = pool is not None and cfg.bn_recalibration_pool
        calibration = calibration_set(pool, None, cfg, seed, k) if on_pool else calibration_set(
            x, y, cfg, seed, k)
    return fit(build, train, make_dataset(x_val, y_val, batch_size=256, num_classes=k), cfg,
               params, run, images=len(x), history=history, key=key, calibration=calibration)


def _finish(model, out: str, metrics: str, result: dict, run: Run, history: str,
            x_sample: np.ndarray, register: dict | None = None) -> None:
    from cnnzoo.tasks.classification import count_params

    if not Path(history).is_file():  # nothing trained (linear_probe, ImageNet): DVC's plot is
        write_text(history, "epoch,accuracy,loss,val_accuracy,val_loss\n")  # still an output
    result = {**result, **count_params(model)}
    if register:  # the shipped model: Keras flavour with signature, in the registry
        register = {**register, "metrics": {k: result[k] for k in ("test_accuracy", "val_accuracy")}}
    finish(model, run, out=out, metrics=metrics, history=history, result=result,
           metric_prefix="final_", register=register, sample=x_sample)


def _finish_b(what: str, model, data: TaskB, out: str, metrics: str, run: Run, history: str,
              register: dict | None = None, **extra) -> None:
    """`_finish` for a task-B model: its validation and test accuracy are the metrics, the
    latter with its bootstrap interval and per-image correctness (the report pairs models on
    the same test images: the transfer gain's interval)."""
    from cnnzoo.tasks.classification import predict_classes
    from cnnzoo.tasks.intervals import accuracy_record

    test = accuracy_record(predict_classes(model, data.x_test) == data.y_test)
    result = {"val_accuracy": _accuracy(model, data.x_val, data.y_val), **test,
              "train_images": len(data.x), **extra}
    _finish(model, out, metrics, result, run, history, to_unit(data.x_val[:4]), register)
    low, high = test["test_accuracy_ci"]
    log.info("%s: val %.4f, test %.4f (95%% CI %.4f-%.4f)", what, result["val_accuracy"],
             result["test_accuracy"], low, high)


@trains("prepared", "augmented")
def pretrain(params: Params, *, arch: str, prepared: str, augmented: str, out: str, metrics: str,
             history: str) -> None:
    """Task A from scratch (or the ImageNet weights, untrained on A, with a task-A head)."""
    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.models import create_model

    cfg = params.pretrain.for_arch(arch)
    meta = load_meta(prepared)
    k, shape = len(meta["task_a"]["classes"]), tuple(meta["image_shape"])
    (x, y), (x_val, y_val) = (load_split(prepared, f"a_{s}") for s in ("train", "val"))
    x, y = (x[: cfg.images], y[: cfg.images]) if cfg.images else (x, y)
    tracked = {"pretrain": cfg.model_dump(exclude={"per_arch"}), "model": params.model_kwargs(arch),
               "seed": params.base.seed, "train_images": len(x)}
    with stage_run("pretrain", arch, experiment=params.base.experiment, params=tracked,
                   tags={"weights": cfg.weights}) as run:
        if cfg.weights == "imagenet":
            from cnnzoo.training.imagenet import imagenet_model

            model = imagenet_model(arch, input_shape=shape, num_classes=k, size=cfg.imagenet_size)
            result = {"weights": "imagenet", "train_images": 0}
        else:
            model = _fit(lambda: create_model(arch, input_shape=shape, num_classes=k,
                                              **params.model_kwargs(arch)),
                         x, y, x_val, y_val, cfg, params, task="a", k=k, augmented=augmented,
                         history=history, key=tracked, run=run, calibrate=True)
            result = {"weights": "scratch", "val_accuracy": _accuracy(model, x_val, y_val),
                      "train_images": len(x)}
        _finish(model, out, metrics, result, run, history, to_unit(x_val[:4]))
    log.info("pretrain %s: %s", arch, {k_: v for k_, v in result.items() if k_ != "weights"})


@trains("prepared", "augmented", "init")
def transfer(params: Params, *, arch: str, prepared: str, augmented: str, init: str, out: str,
             metrics: str, history: str) -> None:
    """Linear probe: the backbone's features of every (augmented) training image are computed
    once, a new head is trained on them with the same `fit`, then put on the network."""
    import keras

    from cnnzoo.training import backbones

    cfg, data = params.transfer.for_arch(arch), task_b(params, prepared)
    pretrained = keras.models.load_model(init)  # safe_mode stays on: no Lambda layers
    backbone = backbones.extract_backbone(pretrained)
    copies, labels = augmented_copies(data.x, data.y, task="b", augmented=augmented,
                                      enabled=cfg.augment)
    tracked = {"transfer": cfg.model_dump(exclude={"per_arch"}), "seed": params.base.seed,
               "train_images": len(data.x), "init": init}
    with stage_run("transfer", arch, experiment=params.base.experiment, params=tracked,
                   tags=experiment_tags(params)) as run:
        log_data(run, params, data.x, data.y, "task B", "train")
        log_data(run, params, data.x_val, data.y_val, "task B", "validation")
        feats, feats_val = backbones.features(backbone, copies), backbones.features(backbone, data.x_val)
        head = _fit_features(feats, labels, feats_val, data, cfg, params, history, tracked, run,
                             name=pretrained.name)
        _finish_b(f"transfer {arch} (linear probe)", backbones.attach_head(pretrained, head), data,
                  out, metrics, run, history)


def _fit_features(feats: np.ndarray, labels: np.ndarray, feats_val: np.ndarray, data: TaskB,
                  cfg: TrainConfig, params: Params, history: str, key: dict, run: Run, name: str):
    """Train the head alone on precomputed features (copies, N, D) through the same `fit`."""
    from cnnzoo.data.datasets import copies_dataset, make_dataset
    from cnnzoo.training import backbones

    train = copies_dataset(feats, labels, batch_size=cfg.batch_size, num_classes=data.k,
                           seed=params.base.seed)
    return fit(lambda: backbones.head_model(feats.shape[-1], data.k, name), train,
               make_dataset(feats_val, data.y_val, batch_size=256, num_classes=data.k), cfg,
               params, run, images=feats.shape[1], history=history, key=key)


def scratch_config(params: Params, arch: str) -> TrainConfig:
    """From-scratch training on B: finetune's images, epochs and batch size (the same budget),
    at the peak learning rate that trains this family from scratch on task A."""
    return params.finetune.for_arch(arch).model_copy(
        update={"learning_rate": params.pretrain.for_arch(arch).learning_rate})


def _train_b_from_scratch(params: Params, arch: str, data: TaskB, augmented: str, history: str,
                          key: dict, run: Run):
    from cnnzoo.models import create_model

    return _fit(lambda: create_model(arch, input_shape=data.image_shape, num_classes=data.k,
                                     **params.model_kwargs(arch)),
                data.x, data.y, data.x_val, data.y_val, scratch_config(params, arch), params,
                task="b", k=data.k, augmented=augmented, history=history, key=key, run=run,
                calibrate=True, pool=data.pool)


@trains("prepared", "augmented", "init")
def finetune(params: Params, *, arch: str, prepared: str, augmented: str, init: str, out: str,
             metrics: str, history: str) -> None:
    """`transfer.strategy`: linear_probe keeps the probe's model, fine_tune_top / fine_tune_all
    train its top blocks / whole backbone at finetune's (lower) learning rate, from_scratch
    trains a new network on B (the same as the scratch stage)."""
    import keras

    from cnnzoo.training import backbones

    strategy, cfg = params.transfer.strategy, params.finetune.for_arch(arch)
    data = task_b(params, prepared)
    tracked = {"finetune": cfg.model_dump(exclude={"per_arch"}), "seed": params.base.seed,
               "train_images": len(data.x), "init": init, "strategy": strategy,
               "top_blocks": params.transfer.top_blocks,
               "adapt_batchnorm": params.transfer.adapt_batchnorm}
    with stage_run("finetune", arch, experiment=params.base.experiment, params=tracked,
                   tags=experiment_tags(params)) as run:
        if strategy == "from_scratch":
            model = _train_b_from_scratch(params, arch, data, augmented, history, tracked, run)
        else:
            if strategy == "linear_probe" or cfg.epochs == 0:
                model = keras.models.load_model(init)
            else:
                top = params.transfer.top_blocks if strategy == "fine_tune_top" else None
                adapt = params.transfer.adapt_batchnorm
                model = _fit(lambda: backbones.unfreeze(keras.models.load_model(init), top, adapt),
                             data.x, data.y, data.x_val, data.y_val, cfg, params, task="b",
                             k=data.k, augmented=augmented, history=history, key=tracked,
                             run=run, calibrate=adapt, pool=data.pool)
        _finish_b(f"finetune {arch} ({strategy})", model, data, out, metrics, run, history,
                  register={"name": f"cnnzoo-{arch}", "arch": arch, "classes": data.names,
                            "what": f"{arch} fine-tuned on task B ({strategy})",
                            "data": data_record(prepared)},
                  strategy=strategy)


@trains("prepared", "augmented")
def scratch(params: Params, *, arch: str, prepared: str, augmented: str, out: str, metrics: str,
            history: str) -> None:
    """The baseline transfer has to beat: task B from random weights, same images and epochs."""
    data = task_b(params, prepared)
    cfg = scratch_config(params, arch)
    tracked = {"scratch": cfg.model_dump(exclude={"per_arch"}), "model": params.model_kwargs(arch),
               "seed": params.base.seed, "train_images": len(data.x)}
    with stage_run("scratch", arch, experiment=params.base.experiment, params=tracked,
                   tags=experiment_tags(params)) as run:
        model = _train_b_from_scratch(params, arch, data, augmented, history, tracked, run)
        _finish_b(f"scratch {arch}", model, data, out, metrics, run, history)


@trains("prepared", "augmented")
def augment_effect(params: Params, *, prepared: str, augmented: str, metrics: str,
                   plots: str) -> None:
    """Train `augment.effect_arch` on task B from scratch with and without augmentation (same
    seed, same epochs) and record both test accuracies: the measured effect of the policy."""
    from cnnzoo.models import create_model
    from cnnzoo.tasks.classification import predict_classes
    from cnnzoo.tasks.intervals import accuracy_record, paired_interval

    arch, seed = params.augment.effect_arch, params.base.seed
    data = task_b(params, prepared)
    result = {"arch": arch, "epochs": params.augment.effect_epochs, "train_images": len(data.x)}
    correct = {}
    with stage_run("augment_effect", arch, experiment=params.base.experiment,
                   params={"augment": params.augment.model_dump()},
                   tags=experiment_tags(params)) as run:
        for variant in ("with", "without"):
            cfg = scratch_config(params, arch).model_copy(update={
                "epochs": params.augment.effect_epochs, "min_steps": 0,
                "augment": variant == "with"})
            model = _fit(lambda: create_model(arch, input_shape=data.image_shape,
                                              num_classes=data.k, **params.model_kwargs(arch)),
                         data.x, data.y, data.x_val, data.y_val, cfg, params, task="b", k=data.k,
                         augmented=augmented, history=str(Path(plots) / f"{variant}.csv"),
                         key={"variant": variant, "arch": arch, "seed": seed,
                              "model": params.model_kwargs(arch)}, run=run, calibrate=True,
                         pool=data.pool)
            correct[variant] = predict_classes(model, data.x_test) == data.y_test
            result.update(accuracy_record(correct[variant], f"accuracy_{variant}"))
        result["delta"] = result["accuracy_with"] - result["accuracy_without"]
        result["delta_ci"] = paired_interval(correct["with"], correct["without"])
        write_json(metrics, result)
        run.log_metrics(result)
    log.info("augmentation effect on %s (task B test): %.4f with vs %.4f without (%+.4f, 95%% CI "
             "%+.4f to %+.4f)", arch, result["accuracy_with"], result["accuracy_without"],
             result["delta"], *result["delta_ci"])
