"""What the training stages share: the `trains` mark (distribution strategy and resumable runs
set up before the stage), task data and its augmented copies, training on in-memory arrays, and
the registered model at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnzoo.config import AugmentConfig, Params, TrainConfig
from cnnzoo.files import read_json, write_json
from cnnzoo.training import backups


def trains(*inputs: str) -> Callable[[Callable], Callable]:
    """Mark a stage function that trains, naming its keyword arguments that are input paths:
    `run_stage` sets its distribution strategy up first and digests those inputs, so that a
    backup of this stage resumes only a run on the same data (cnnzoo.training.backups)."""
    def prepare(params: Params, name: str, kwargs: dict) -> None:
        # Before any other TensorFlow work: MultiWorkerMirroredStrategy (TF_CONFIG) and split
        # CPUs can only be set up at program start.
        from cnnzoo.training import distribute

        distribute.strategy(params.base)
        backups.prune_committed()
        backups.enter_stage(name, [kwargs.get(k) for k in inputs])

    def mark(fn: Callable[..., object]) -> Callable[..., object]:
        fn.prepare = prepare
        return fn
    return mark


def policy(augmented: str) -> AugmentConfig:
    raw = read_json(Path(augmented) / "policy.json")
    return AugmentConfig(**{k: v for k, v in raw.items() if k != "seed"})


def augmented_copies(x: np.ndarray, y: np.ndarray, *, task: str, augmented: str,
                     enabled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The first len(x) images of the augment stage's copies of `{task}_train` as one uint8
    array (copies, N, ...); just (x[None], y) when augmentation is off for the stage."""
    from cnnzoo.data.augment import shard_name
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
    from cnnzoo.data.augment import batch_mixer
    from cnnzoo.data.datasets import copies_dataset

    copies, labels = augmented_copies(x, y, task=task, augmented=augmented, enabled=cfg.augment)
    mixer = batch_mixer(policy(augmented)) if cfg.augment else None
    return copies_dataset(copies, labels, batch_size=cfg.batch_size, num_classes=num_classes,
                          seed=seed, mixer=mixer)


@dataclass(frozen=True)
class TaskB:
    """Task B's splits as the training stages see them: the first `labels_per_class` images
    per class of the pool, the validation and the test split, and the pool's images (their
    labels unused: BatchNorm statistics, `bn_recalibration_pool`)."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    names: list[str]
    image_shape: tuple[int, ...]
    pool: np.ndarray

    @property
    def k(self) -> int:
        return len(self.names)


def task_b(params: Params, prepared: str) -> TaskB:
    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.data.prepare import first_labels

    meta = load_meta(prepared)
    names = meta["task_b"]["names"]
    pool, pool_labels = load_split(prepared, "b_train")
    x, y = first_labels(pool, pool_labels, params.data.labels_per_class, len(names))
    return TaskB(x, y, *load_split(prepared, "b_val"), *load_split(prepared, "b_test"), names,
                 tuple(meta["image_shape"]), pool)


def calibration_set(x: np.ndarray, y: np.ndarray | None, cfg: TrainConfig, seed: int,
                    num_classes: int | None = None):
    """Clean training images to re-estimate BatchNorm statistics on after training: a seeded
    random subset (no shuffle buffer to fill over all of x), `cfg.bn_recalibration_batches`.
    The statistics need no labels: `y` None (unlabelled images) stands in zeros."""
    from cnnzoo.data.datasets import make_dataset

    pick = np.random.default_rng(seed).permutation(len(x))
    pick = pick[: cfg.bn_recalibration_batches * cfg.batch_size]
    y = np.zeros(len(x), np.int64) if y is None else y
    return make_dataset(x[pick], y[pick], batch_size=cfg.batch_size, num_classes=num_classes)


def fit(build: Callable, train, val_ds, cfg: TrainConfig, params: Params, run, *, images: int,
        history: str, key: dict, calibration=None, objective=None):
    """`loop.fit` as every training stage runs it: the epochs planned for `images` training
    images (cfg.min_steps), a backup that only a run with the same `key` and settings resumes,
    the epochs' metrics in the stage's MLflow run. `train` is an endless dataset (steps from the
    plan) or (dataset, steps per epoch) when its stream sets them."""
    from cnnzoo.training import loop

    epochs, steps = loop.plan_epochs(cfg, images)
    cfg = cfg.model_copy(update={"epochs": epochs})
    train_ds, steps = train if isinstance(train, tuple) else (train, steps)
    return loop.fit(build, train_ds, val_ds, cfg, params.base, history_csv=history,
                    steps_per_epoch=steps,
                    backup_dir=backups.backup_dir(run.name, {**key, "cfg": cfg.model_dump()}),
                    calibration_ds=calibration, callbacks=[run.epoch_callback()],
                    objective=objective or loop.CLASSIFY)


def fit_arrays(build: Callable, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
               y_val: np.ndarray, cfg: TrainConfig, params: Params, run, *, objective,
               history: str, key: dict, val_batch: int = 256, train_ds=None):
    """`fit` on in-memory arrays with labels as they are (masks, boxes, identities): the images
    reshuffled every epoch (or `train_ds`, e.g. augmented copies), BatchNorm statistics
    re-estimated on clean training images."""
    from cnnzoo.data.datasets import make_dataset

    seed = params.base.seed
    if train_ds is None:
        train_ds = make_dataset(x, y, batch_size=cfg.batch_size, training=True, seed=seed)
    return fit(build, train_ds, make_dataset(x_val, y_val, batch_size=val_batch), cfg, params,
               run, images=len(x), history=history, key=key, objective=objective,
               calibration=calibration_set(x, y, cfg, seed))


def finish(model, run, *, out: str, metrics: str, history: str, result: dict,
           metric_prefix: str = "", register: dict | None = None,
           sample: np.ndarray | None = None) -> None:
    """The end of every training stage: the model file, its metrics (JSON for DVC, numbers for
    MLflow), the epoch history, and the model in the run: registered with `register`'s
    description (`register_keras`, `sample` as its input example), else the file itself (the
    Keras flavour costs seconds per stage)."""
    from cnnzoo.training import saving

    saving.save_model(model, out)
    write_json(metrics, result)
    run.log_metrics({f"{metric_prefix}{k}": v for k, v in result.items()})
    run.log_artifact(history)
    if register:
        register_keras(run, model, sample, **register)
    else:
        run.log_artifact(out, folder="model")


def register_keras(run, model, x_sample: np.ndarray, *, name: str, what: str, arch: str,
                   data: dict | None, classes: list[str], metrics: dict[str, float]) -> None:
    """The model in the run (Keras flavour, with a signature) and, on the committed default run
    only (cnnzoo/tracking/registration.py), a new version of registered model `name`, described
    and tagged with its data, classes and metrics. An experiment's model stays in its run."""
    from cnnzoo.tracking import registration

    uri = run.log_keras_model(model, x_sample)
    if uri and registration.may_register(name):
        description, tags = registration.describe(what, arch, data, classes, metrics)
        run.register(uri, name, description=description, tags=tags)
