"""One function per DVC stage: load inputs, call the library, write outputs atomically, track.

`pipelines/<stage>.py` only parses paths and calls these through `run_stage`, which turns the
project's expected errors (bad params, missing data, bad checksums) into one clear log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnzoo import config, logs, runner
from cnnzoo.config import AugmentConfig, Params
from cnnzoo.files import atomic_path, read_json, write_json
from cnnzoo.tracking import stage_run

log = logging.getLogger(__name__)
BACKUP_ROOT = Path(".cache/backup")
EXPECTED_ERRORS = (config.ConfigError, ValueError, FileNotFoundError, RuntimeError)


def backup_dir(name: str, settings: dict) -> Path:
    """Where BackupAndRestore keeps a killed run's state, keyed by its settings so a resume never
    restores weights trained under different params."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return BACKUP_ROOT / f"{name}-{digest[:12]}"


def run_stage(fn: Callable[..., object], **kwargs) -> None:
    """Entry point for stage scripts: logging, params from `params` path, clean failures.

    The stage is named as DVC names it (`pretrain@lenet5`), here and to `cnnzoo run`, which
    repeats the failed stage and its cause as the last line of the pipeline's output.
    """
    logs.setup()
    params_path = kwargs.pop("params", config.DEFAULT_PARAMS)
    name = kwargs.get("stage", fn.__name__) + (f"@{kwargs['arch']}" if kwargs.get("arch") else "")
    runner.stage_started(name)
    try:
        fn(config.load(params_path), **kwargs)
    except EXPECTED_ERRORS as err:
        runner.stage_failed(name, err)
        log.error("%s failed: %s", name, err)
        log.debug("traceback (CNNZOO_LOG_LEVEL=DEBUG)", exc_info=True)
        sys.exit(1)
    except Exception as err:  # a bug: keep the traceback, but still say which stage
        runner.stage_failed(name, err)
        raise
    runner.stage_succeeded()


def download(params: Params, *, out: str, cache: str) -> None:
    from cnnzoo.data.prepare import prepare

    with stage_run("download", None, experiment=params.base.experiment,
                   params={"data": params.data.model_dump(), "seed": params.base.seed}) as run:
        meta = prepare(params.data, params.base.seed, out, cache)
        run.log_metrics({f"n_{k}": v for k, v in meta["counts"].items()})
        run.log_metrics({"skipped_files": meta["skipped"]})
        if meta["skipped"]:
            run.log_artifact(Path(out) / "skipped.txt")


def augment(params: Params, *, prepared: str, out: str, preview: str) -> None:
    """Resolve the policy, write the augmented training shards, render the preview grid."""
    from cnnzoo.augment import batch_mixer, build_augmenter, write_shards
    from cnnzoo.data.datasets import load_meta, load_split, to_float
    from cnnzoo.viz import augmentation_grid

    cfg, seed = params.augment, params.base.seed
    shape = tuple(load_meta(prepared)["image_shape"])
    with stage_run("augment", None, experiment=params.base.experiment,
                   params={"augment": cfg.model_dump()}) as run:
        with atomic_path(out) as tmp:
            tmp.mkdir()
            write_json(tmp / "policy.json", {**cfg.model_dump(), "seed": seed})
            for split in ("a_train", "b_train"):
                write_shards(*load_split(prepared, split), cfg, seed, tmp, split)
        x, y = load_split(prepared, "a_train")
        originals = to_float(x[: cfg.preview_samples]).numpy()
        augmenter = build_augmenter(cfg, seed, shape)
        rows = [augmenter(originals, training=True).numpy() for _ in range(3)] if augmenter else []
        labels = [f"aug {i}" for i in range(1, len(rows) + 1)]
        mixer = batch_mixer(cfg)
        if mixer is not None:
            onehot = np.eye(int(y.max()) + 1, dtype=np.float32)[y[: cfg.preview_samples]]
            rows.append(mixer(originals, onehot, np.array([seed, 0]))[0].numpy())
            labels.append("mixup/CutMix")
        augmentation_grid(originals, rows, preview, title="augmentation preview",
                          row_labels=labels)
        run.log_artifact(preview)
    log.info("augmentation: %d cop%s per training set -> %s, preview -> %s", cfg.copies,
             "y" if cfg.copies == 1 else "ies", out, preview)


def _policy(augmented: str) -> AugmentConfig:
    raw = read_json(Path(augmented) / "policy.json")
    return AugmentConfig(**{k: v for k, v in raw.items() if k != "seed"})


def training_data(x, y, *, task: str, num_classes: int, cfg, augmented: str, seed: int):
    """The training stream for task `task`: augmented shards with per-batch mixing when
    `cfg.augment`, the plain images otherwise. Returns (dataset, steps per epoch or None)."""
    from cnnzoo.augment import batch_mixer, shard_name
    from cnnzoo.data.datasets import make_dataset, stream_dataset

    policy = _policy(augmented)
    mixer = batch_mixer(policy) if cfg.augment else None
    if cfg.augment and policy.copies:
        shards = [Path(augmented) / shard_name(f"{task}_train", c) for c in range(policy.copies)]
        return stream_dataset(shards, x.shape[1:], len(x), batch_size=cfg.batch_size,
                              num_classes=num_classes, seed=seed, mixer=mixer)
    return make_dataset(x, y, batch_size=cfg.batch_size, num_classes=num_classes, training=True,
                        seed=seed, mixer=mixer), None


def train(params: Params, *, stage: str, arch: str, prepared: str, augmented: str, out: str,
          metrics: str, history: str, init: str | None = None) -> None:
    """pretrain (task A from scratch), transfer (frozen backbone, new head on B), finetune."""
    import keras

    from cnnzoo import train as trainer
    from cnnzoo import transfer
    from cnnzoo.data.datasets import load_meta, load_split, make_dataset
    from cnnzoo.evaluate import count_params
    from cnnzoo.models import create_model

    cfg = getattr(params, stage)
    seed = params.base.seed
    task = "a" if stage == "pretrain" else "b"
    meta = load_meta(prepared)
    k = len(meta[f"task_{task}"]["classes"])
    (x_tr, y_tr), (x_val, y_val) = (load_split(prepared, f"{task}_{s}") for s in ("train", "val"))
    train_ds, steps = training_data(x_tr, y_tr, task=task, num_classes=k, cfg=cfg,
                                    augmented=augmented, seed=seed)
    val_ds = make_dataset(x_val, y_val, batch_size=256, num_classes=k)

    def build() -> keras.Model:
        if stage == "pretrain":
            return create_model(arch, input_shape=tuple(meta["image_shape"]), num_classes=k,
                                **params.model_kwargs(arch))
        if init is None:
            raise ValueError(f"{stage} needs --init (the previous stage's model)")
        previous = keras.models.load_model(init)  # safe_mode stays on: no Lambda layers
        if stage == "transfer":
            return transfer.with_new_head(previous, k)
        return transfer.unfreeze(previous, cfg.unfreeze)

    tracked = {stage: cfg.model_dump(), "model": params.model_kwargs(arch), "seed": seed,
               "train_images": len(x_tr), "base": params.base.model_dump()}
    with stage_run(stage, arch, experiment=params.base.experiment, params=tracked) as run:
        # Only a network trained from scratch needs its BatchNorm statistics re-estimated: in
        # transfer and finetune the backbone runs with training=False (see transfer.py).
        calibration = make_dataset(x_tr, y_tr, batch_size=cfg.batch_size, num_classes=k,
                                   training=True, seed=seed) if stage == "pretrain" else None
        model = trainer.fit(build, train_ds, val_ds, cfg, params.base, history_csv=history,
                            backup_dir=backup_dir(f"{stage}-{arch}", {
                                **tracked, "init": init and Path(init).stat().st_mtime_ns}),
                            steps_per_epoch=steps,
                            calibration_ds=calibration, callbacks=[run.epoch_callback()])
        val_loss, val_acc = model.evaluate(val_ds, verbose=0)
        trainer.save_model(model, out)
        result = {"val_accuracy": float(val_acc), "val_loss": float(val_loss),
                  "train_images": len(x_tr), **count_params(model)}
        write_json(metrics, result)
        run.log_metrics({f"final_{k}": v for k, v in result.items()})
        run.log_artifact(history)
        registered = f"cnnzoo-{arch}" if stage == "finetune" else None
        run.log_keras_model(model, make_sample(x_val), registered_name=registered)
    log.info("%s %s: val_accuracy=%.4f -> %s", stage, arch, val_acc, out)


def augment_effect(params: Params, *, prepared: str, augmented: str, metrics: str,
                   plots: str) -> None:
    """Train `augment.effect_arch` on task B from scratch with and without augmentation (same
    seed, same epochs) and record both test accuracies: the measured effect of the policy."""
    from cnnzoo import train as trainer
    from cnnzoo.data.datasets import load_meta, load_split, make_dataset
    from cnnzoo.evaluate import classification_metrics, predict_classes
    from cnnzoo.models import create_model

    arch, seed = params.augment.effect_arch, params.base.seed
    meta = load_meta(prepared)
    k, names = len(meta["task_b"]["classes"]), meta["task_b"]["names"]
    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = (load_split(prepared, f"b_{s}")
                                                   for s in ("train", "val", "test"))
    val_ds = make_dataset(x_val, y_val, batch_size=256, num_classes=k)
    result = {"arch": arch, "epochs": params.augment.effect_epochs, "train_images": len(x_tr)}
    with stage_run("augment_effect", arch, experiment=params.base.experiment,
                   params={"augment": params.augment.model_dump()}) as run:
        for variant in ("with", "without"):
            cfg = params.transfer.model_copy(update={
                "epochs": params.augment.effect_epochs, "augment": variant == "with",
                "learning_rate": params.pretrain.learning_rate})
            train_ds, steps = training_data(x_tr, y_tr, task="b", num_classes=k, cfg=cfg,
                                            augmented=augmented, seed=seed)
            model = trainer.fit(
                lambda: create_model(arch, input_shape=tuple(meta["image_shape"]), num_classes=k,
                                     **params.model_kwargs(arch)),
                train_ds, val_ds, cfg, params.base, history_csv=Path(plots) / f"{variant}.csv",
                backup_dir=backup_dir(f"augment_effect-{variant}",
                                      {"cfg": cfg.model_dump(), "arch": arch, "seed": seed,
                                       "model": params.model_kwargs(arch)}),
                steps_per_epoch=steps,
                calibration_ds=make_dataset(x_tr, y_tr, batch_size=cfg.batch_size, num_classes=k,
                                            training=True, seed=seed))
            acc = classification_metrics(y_te, predict_classes(model, x_te), names)[0]["accuracy"]
            result[f"accuracy_{variant}"] = acc
        result["delta"] = result["accuracy_with"] - result["accuracy_without"]
        write_json(metrics, result)
        run.log_metrics({k_: v for k_, v in result.items() if isinstance(v, float)})
    log.info("augmentation effect on %s (task B test): %.4f with vs %.4f without (%+.4f)", arch,
             result["accuracy_with"], result["accuracy_without"], result["delta"])


def make_sample(x: np.ndarray, n: int = 4) -> np.ndarray:
    return (x[:n].astype(np.float32) / 255.0)


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
                   params={"arch": arch, "test_images": len(y)}) as run:
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
    result, files = {}, {}
    for variant in exporter.VARIANTS:
        files[variant] = exporter.convert(net, variant, x_rep)
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
                   params={"export": cfg.model_dump()}) as run:
        run.log_metrics({f"{v}_{k}": result[v][k] for v in exporter.VARIANTS
                         for k in ("size_bytes", "accuracy", "latency_ms")})
        run.log_metrics({"int8_accuracy_drop": result["int8_accuracy_drop"]})
        for f in sorted(Path(out).iterdir()):
            run.log_artifact(f, folder="tflite")


def report(params: Params, *, metrics_dir: str, md: str, csv: str) -> None:
    from cnnzoo.report import collect, write_report

    rows = collect(params.base.archs, Path(metrics_dir), Path(metrics_dir) / "export",
                   Path(metrics_dir) / "augment_effect.json")
    write_report(rows, Path(md), Path(csv), title="cnnzoo leaderboard (task B test split)")
    with stage_run("report", None, experiment=params.base.experiment,
                   params={"archs": params.base.archs}) as run:
        run.log_artifact(md)
        run.log_artifact(csv)
    log.info("report -> %s", md)
