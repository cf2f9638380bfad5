"""What every stage shares: the entry point, resumable-run folders, task data, tracking tags and
training on in-memory arrays.

`run_stage` turns the project's expected errors (bad params, missing data, bad checksums) into
one clear log line and names the failed stage as DVC does (`pretrain@lenet5`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnzoo import backups, config, logs, runner
from cnnzoo.config import AugmentConfig, Params, TrainConfig
from cnnzoo.files import atomic_path, read_json, write_json

log = logging.getLogger(__name__)
EXPECTED_ERRORS = (config.ConfigError, ValueError, FileNotFoundError, RuntimeError)


def trains(*inputs: str) -> Callable[[Callable], Callable]:
    """Mark a stage function that trains, naming its keyword arguments that are input paths:
    `run_stage` sets its distribution strategy up first and digests those inputs, so that a
    backup of this stage resumes only a run on the same data (cnnzoo.backups)."""
    def mark(fn: Callable[..., object]) -> Callable[..., object]:
        fn.trains, fn.inputs = True, inputs
        return fn
    return mark


def run_stage(fn: Callable[..., object], **kwargs) -> None:
    """Entry point for stage scripts: logging, params from `params` path, clean failures.

    The stage is named as DVC names it (`pretrain@lenet5`), here and to `cnnzoo run`, which
    repeats the failed stage and its cause as the last line of the pipeline's output.
    """
    entered = time.time()
    logs.setup()
    params_path = kwargs.pop("params", config.DEFAULT_PARAMS)
    name = kwargs.get("stage", fn.__name__) + (f"@{kwargs['arch']}" if kwargs.get("arch") else "")
    runner.stage_started(name)
    try:
        params = config.load(params_path)
        if getattr(fn, "trains", False):
            # Before any other TensorFlow work: MultiWorkerMirroredStrategy (TF_CONFIG) and
            # split CPUs can only be set up at program start.
            from cnnzoo import distribute

            distribute.strategy(params.base)
            backups.prune_committed()
            backups.enter_stage(name, [kwargs.get(k) for k in fn.inputs])
        began = time.time()
        fn(params, **kwargs)
        runner.stage_times(name, entered, began, time.time())
    except EXPECTED_ERRORS as err:
        runner.stage_failed(name, err)
        log.error("%s failed: %s", name, err)
        log.debug("traceback (CNNZOO_LOG_LEVEL=DEBUG)", exc_info=True)
        sys.exit(1)
    except Exception as err:  # a bug: keep the traceback, but still say which stage
        runner.stage_failed(name, err)
        raise
    runner.stage_succeeded()


def policy(augmented: str) -> AugmentConfig:
    raw = read_json(Path(augmented) / "policy.json")
    return AugmentConfig(**{k: v for k, v in raw.items() if k != "seed"})


def augmented_copies(x: np.ndarray, y: np.ndarray, *, task: str, augmented: str,
                     enabled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The first len(x) images of the augment stage's copies of `{task}_train` as one uint8
    array (copies, N, ...); just (x[None], y) when augmentation is off for the stage."""
    from cnnzoo.augment import shard_name
    from cnnzoo.data.datasets import load_copies

    n_copies = policy(augmented).copies if enabled else 0
    if not n_copies:
        return x[None], y
    shards = [Path(augmented) / shard_name(f"{task}_train", c) for c in range(n_copies)]
    copies, labels = load_copies(shards, x.shape[1:], limit=len(x))
    if not np.array_equal(labels, y):
        raise ValueError(f"{augmented}: the augmented copies do not match the prepared "
                         f"{task}_train split; rerun `dvc repro augment`")
    return copies, labels


def training_data(x, y, *, task: str, num_classes: int, cfg: TrainConfig, augmented: str,
                  seed: int):
    """The training stream for task `task`: augmented copies in memory with per-batch mixing
    when `cfg.augment`, the plain images otherwise. Returns (dataset, steps per epoch)."""
    from cnnzoo.augment import batch_mixer
    from cnnzoo.data.datasets import copies_dataset

    copies, labels = augmented_copies(x, y, task=task, augmented=augmented, enabled=cfg.augment)
    mixer = batch_mixer(policy(augmented)) if cfg.augment else None
    return copies_dataset(copies, labels, batch_size=cfg.batch_size, num_classes=num_classes,
                          seed=seed, mixer=mixer)


@dataclass(frozen=True)
class TaskB:
    """Task B's splits as the training stages see them: the first `labels_per_class` images
    per class of the pool, the validation and the test split."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    names: list[str]
    image_shape: tuple[int, ...]

    @property
    def k(self) -> int:
        return len(self.names)


def task_b(params: Params, prepared: str) -> TaskB:
    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.data.prepare import first_labels

    meta = load_meta(prepared)
    names = meta["task_b"]["names"]
    x, y = first_labels(*load_split(prepared, "b_train"), params.data.labels_per_class,
                        len(names))
    return TaskB(x, y, *load_split(prepared, "b_val"), *load_split(prepared, "b_test"), names,
                 tuple(meta["image_shape"]))


def log_data(run, params: Params, x: np.ndarray, y: np.ndarray, part: str,
             context: str) -> None:
    """`x, y` as the run's MLflow dataset input, named as the UI shows it (`fashion_mnist:task_B`,
    `folder:task_A`), with the configured source (name or folder)."""
    run.log_dataset(x, y, name=f"{params.data.source}:{part.replace(' ', '_')}",
                    source=params.data.path or params.data.source, context=context)


def data_record(folder: str | Path) -> dict[str, str | None]:
    """What a metrics file says about its data: the source and the digest of the splits that the
    download (data/prepared) or scenes (data/scenes) stage wrote, so the report can tell when two
    pipelines' results come from different data."""
    meta = read_json(Path(folder) / "meta.json")
    source = meta["source"] if "from" not in meta else f"{meta['source']} of {meta['from']}"
    return {"source": source if not meta.get("path") else f"{source}:{meta['path']}",
            "digest": meta.get("digest")}


def register_keras(run, model, x_sample: np.ndarray, *, name: str, what: str, arch: str,
                   data: dict | None, classes: list[str], metrics: dict[str, float]) -> None:
    """The model in the run (Keras flavour, with a signature) and, on the committed default run
    only (cnnzoo/promote.py), a new version of registered model `name`, described and tagged with
    its data, classes and metrics. An experiment's model stays in its run."""
    from cnnzoo import promote

    uri = run.log_keras_model(model, x_sample)
    if uri and promote.may_register(name):
        description, tags = promote.describe(what, arch, data, classes, metrics)
        run.register(uri, name, description=description, tags=tags)


def experiment_tags(params: Params) -> dict[str, str]:
    """What the MLflow UI groups and compares runs by (also logged as params)."""
    return {"strategy": params.transfer.strategy, "weights": params.pretrain.weights,
            "labels_per_class": str(params.data.labels_per_class or "all")}


def make_sample(x: np.ndarray, n: int = 4) -> np.ndarray:
    return (x[:n].astype(np.float32) / 255.0)


def fit_arrays(build: Callable, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
               y_val: np.ndarray, cfg: TrainConfig, params: Params, *, objective, history: str,
               key: dict, run, val_batch: int = 256, train_ds=None):
    """`train.fit` on in-memory arrays with labels as they are (masks, identities), for the
    segmentation and verification pipelines: epochs planned for len(x) (cfg.min_steps), the
    images reshuffled every epoch (or `train_ds`, e.g. augmented copies, with as many steps),
    BatchNorm statistics re-estimated on clean training images."""
    from cnnzoo import train as trainer
    from cnnzoo.data.datasets import make_dataset

    epochs, steps = trainer.plan_epochs(cfg, len(x))
    cfg = cfg.model_copy(update={"epochs": epochs})
    seed = params.base.seed
    pick = np.random.default_rng(seed).permutation(len(x))[: cfg.bn_recalibration_batches
                                                           * cfg.batch_size]
    if train_ds is None:
        train_ds = make_dataset(x, y, batch_size=cfg.batch_size, training=True, seed=seed)
    return trainer.fit(build, train_ds,
                       make_dataset(x_val, y_val, batch_size=val_batch), cfg, params.base,
                       history_csv=history, steps_per_epoch=steps,
                       backup_dir=backups.backup_dir(run.name, {**key, "cfg": cfg.model_dump()}),
                       calibration_ds=make_dataset(x[pick], y[pick], batch_size=cfg.batch_size),
                       callbacks=[run.epoch_callback()], objective=objective)


def gate_and_write(out: str, metrics: str, files: dict[str, bytes], result: dict, run, *,
                   name: str, metric: str, max_drop: float, card: dict,
                   labels: list[str] | None = None) -> None:
    """The end of a non-classifier export stage: log every variant's size, `metric` and drop,
    fail on the parity gate (`export.max_drop`), else write the folder (`<name>_<variant>.tflite`
    and model.json: `card` plus the variants) and the metrics."""
    from cnnzoo import mobile

    failures = mobile.gate_failures(result, max_drop, metric)
    run.log_metrics({f"{v}_{k}": result[v][k] for v in files for k in ("size_bytes", metric,
                                                                        "drop")})
    if failures:
        raise RuntimeError(f"{name}: TFLite parity gate failed: " + "; ".join(failures))
    card = {**card,
            "variants": {v: {"file": f"{name}_{v}.tflite", "size_bytes": len(c),
                             metric: result[v][metric]} for v, c in files.items()},
            f"keras_{metric}": result[f"keras_{metric}"]}
    write_export(out, files, card, run, labels=labels)
    write_json(metrics, result)


def write_export(out: str, files: dict[str, bytes], card: dict, run,
                 labels: list[str] | None = None) -> None:
    """An export folder written atomically as a whole: the .tflite files (named in
    card["variants"]), labels.txt when given and model.json; then logged as `tflite` artifacts."""
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for variant, content in files.items():
            (tmp / card["variants"][variant]["file"]).write_bytes(content)
        if labels is not None:
            (tmp / "labels.txt").write_text("\n".join(labels) + "\n")
        write_json(tmp / "model.json", card)
    for f in sorted(Path(out).iterdir()):
        run.log_artifact(f, folder="tflite")
