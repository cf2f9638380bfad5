"""ONE fit routine for every architecture and stage: strategy, precision, seeds, callbacks.

What differs between tasks is an `Objective` (the loss, the metrics, a target's shape), not the
loop: classifiers, U-Net's per-pixel labels, triplet embeddings and Siamese pairs all train here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnnzoo.config import BaseConfig, TrainConfig
from cnnzoo.data.datasets import epoch_steps
from cnnzoo.files import atomic_path
from cnnzoo.training import distribute

log = logging.getLogger(__name__)


def setup_runtime(base: BaseConfig) -> tf.distribute.Strategy:
    """Seeds, determinism, mixed precision and the distribution strategy, from `base`."""
    keras.utils.set_random_seed(base.seed)
    if base.deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = distribute.gpus()
    if base.mixed_precision == "on" or (base.mixed_precision == "auto" and gpus):
        # float16 compute, float32 variables; the logits head and the loss stay float32
        # (models/layers.py) and compile() wraps the optimizer in a LossScaleOptimizer.
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        keras.mixed_precision.set_global_policy("float32")
    found = distribute.strategy(base)
    log.info("runtime: %d GPU(s), strategy=%s (%d replica(s)), precision=%s, jit_compile=%s",
             len(gpus), type(found).__name__, found.num_replicas_in_sync,
             keras.mixed_precision.global_policy().name, distribute.jit_compile(base))
    return found


def _layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def recalibrate_batchnorm(model: keras.Model, dataset: tf.data.Dataset, batches: int) -> int:
    """Re-estimate BatchNorm moving statistics for the final weights ("precise BN", Wu & Johnson
    2021, "Rethinking 'Batch' in BatchNorm"). Returns the number of layers updated.

    Short CPU runs (a few hundred steps) leave the exponential moving averages far behind weights
    that Adam is still moving fast: validation accuracy sits at chance in inference mode while
    training accuracy climbs. Forward passes in training mode with momentum k/(k+1) on batch k
    make the moving statistics the plain average over `batches` clean training batches. Layers
    inside a backbone called with `training=False` (transfer) are left untouched, as intended.
    """
    bns = [lyr for lyr in _layers(model) if isinstance(lyr, keras.layers.BatchNormalization)]
    if not bns or batches <= 0:
        return 0
    momenta = [lyr.momentum for lyr in bns]
    # One traced forward function serves every batch: the momentum is a variable that the
    # traced moving-average update reads on each call.
    momentum = tf.Variable(0.0, trainable=False, dtype=tf.float32)
    forward = tf.function(lambda x: model(x, training=True))
    try:
        for lyr in bns:
            lyr.momentum = momentum
        for k, (x, _) in enumerate(dataset.take(batches)):
            momentum.assign(k / (k + 1))
            forward(x)
    finally:
        for lyr, m in zip(bns, momenta, strict=True):
            lyr.momentum = m
    return len(bns)


@dataclass(frozen=True)
class Objective:
    """What `fit` minimises and reports for one kind of task.

    `loss(cfg)` and `metrics(model)` are built inside the strategy scope; `target(model)` is one
    example's label (batch of 1), used to create the metric variables before tracing.
    """

    loss: Callable[[TrainConfig], keras.losses.Loss]
    metrics: Callable[[keras.Model], list]
    target: Callable[[keras.Model], np.ndarray]


# Logits and one-hot (possibly mixed) labels.
CLASSIFY = Objective(
    loss=lambda cfg: keras.losses.CategoricalCrossentropy(from_logits=True,
                                                          label_smoothing=cfg.label_smoothing),
    metrics=lambda model: [keras.metrics.CategoricalAccuracy(name="accuracy")],
    target=lambda model: np.zeros((1, model.output_shape[-1]), np.float32))


def _inputs(model: keras.Model) -> list[np.ndarray] | np.ndarray:
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    x = [np.zeros((1, *s[1:]), np.float32) for s in shapes]
    return x if len(x) > 1 else x[0]


def _build_state(model: keras.Model, objective: Objective) -> None:
    """Create the optimizer slots and metric variables now. Keras builds them before tracing only
    under an explicit strategy; otherwise the first trace of the train step creates them and
    tf.function traces it a second time: 24 s -> 14 s for GoogLeNet's first epoch on 2 cores."""
    model.optimizer.build(model.trainable_variables)
    x = _inputs(model)
    model.compute_metrics(x, objective.target(model), model(x, training=False), sample_weight=None)
    model.reset_metrics()


def plan_epochs(cfg: TrainConfig, n_images: int) -> tuple[int, int]:
    """(epochs, steps per epoch) for `n_images`: `cfg.epochs`, raised to reach `cfg.min_steps`
    optimizer steps, so that 5 labels per class still get a few hundred updates."""
    steps = epoch_steps(n_images, cfg.batch_size)
    return max(cfg.epochs, math.ceil(cfg.min_steps / steps)), steps


def execution_steps(steps_per_epoch: int, most: int = 16) -> int:
    """Training steps per call of the compiled train function (Keras' steps_per_execution): the
    largest divisor of the epoch's steps up to `most`, as Keras would otherwise run a whole last
    call past the epoch's end. Fewer Python round trips per step: +10-25% for LeNet-5 here."""
    return max(d for d in range(1, most + 1) if steps_per_epoch % d == 0)


def learning_rate(cfg: TrainConfig, total_steps: int):
    """Linear warm-up to the peak rate, then cosine decay to zero (Loshchilov & Hutter 2017;
    Goyal et al. 2017's warm-up): the standard schedule for short budgets."""
    if cfg.schedule == "constant" or total_steps < 2:
        return cfg.learning_rate
    warmup = int(total_steps * cfg.warmup)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else cfg.learning_rate, total_steps - warmup,
        warmup_target=cfg.learning_rate if warmup else None, warmup_steps=warmup)


# A killed stage resumes from its last backup, taken at an epoch end at most this often: saving
# costs 0.1-0.5 s, which at 160 one-second epochs (5 labels per class) was a third of the stage.
# CNNZOO_BACKUP_EVERY_S overrides it (0 = every epoch; the kill-and-resume test uses that).
BACKUP_EVERY_S = float(os.environ.get("CNNZOO_BACKUP_EVERY_S", 30.0))


class ThrottledBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (restore at the start, delete at the end), saving at the end of an
    epoch only once `every_s` seconds have passed since the last save (or the start), and
    atomically: Keras rewrites its weights file in place, and a kill during that write left a
    backup that every later run failed to load."""

    def __init__(self, backup_dir: str, every_s: float):
        super().__init__(backup_dir)
        self.every_s = every_s
        self._saved_at = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if time.monotonic() - self._saved_at >= self.every_s:
            self._save_model()
            self._saved_at = time.monotonic()

    def _save_model(self):
        # Weights first, then the epoch that names them: a kill between the two renames makes
        # the next run redo one epoch from newer weights, never read a half-written file.
        with atomic_path(self._weights_path) as tmp:
            named = tmp.with_name(tmp.name.removesuffix(".h5") + ".weights.h5")  # Keras insists
            self.model.save_weights(named)
            named.rename(tmp)
        with atomic_path(self._training_metadata_path) as tmp:
            tmp.write_text(json.dumps({"epoch": self._current_epoch, "batch": 0}))


def resume_point(state: Path, partial_csv: Path) -> int:
    """Epochs completed by the backup in `state` (0 without one), with `partial_csv` cut to
    those epochs: a killed run logged epochs after its last backup, and it trains them again."""
    meta = state / "training_metadata.json"
    done = int(json.loads(meta.read_text())["epoch"]) if meta.exists() else 0
    rows = partial_csv.read_bytes().splitlines(keepends=True) if partial_csv.exists() else []
    if done and len(rows) < 1 + done:
        # The history would lack epochs the weights have seen (a backup written before its
        # epoch's row, as the callbacks were once ordered): start over rather than ship it.
        log.warning("discarding the backup in %s: it has %d epochs, its history %d", state.parent,
                    done, max(len(rows) - 1, 0))
        shutil.rmtree(state, ignore_errors=True)
        done = 0
    if not done:
        partial_csv.unlink(missing_ok=True)
    else:
        with atomic_path(partial_csv) as tmp:  # CSVLogger ends rows \r\n: keep the bytes
            tmp.write_bytes(b"".join(rows[: 1 + done]))
    return done


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the stage stops instead of saving and exporting garbage."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Raise `TrainingDiverged` at the first batch whose running loss is not finite, naming the
    epoch, the batch and the learning rate then (Keras' TerminateOnNaN only stops quietly, and
    the stage would go on to save the broken weights)."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.epoch = name, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        lr = self.model.optimizer.learning_rate
        lr = float(lr(self.model.optimizer.iterations) if callable(lr) else lr)
        raise TrainingDiverged(
            f"{self.name}: training diverged, loss {float(loss)} at epoch {self.epoch + 1}, batch "
            f"{batch + 1} (learning rate {lr:.3g}); lower the stage's learning_rate in params.yaml"
            " (per_arch for one architecture) and run again")


def fit(build: Callable[[], keras.Model], train_ds: tf.data.Dataset, val_ds: tf.data.Dataset,
        cfg: TrainConfig, base: BaseConfig, *, history_csv: str | Path, backup_dir: str | Path,
        steps_per_epoch: int, calibration_ds: tf.data.Dataset | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        objective: Objective = CLASSIFY, steps_per_execution: int | None = None) -> keras.Model:
    """Build (inside the strategy scope), compile and train a model for `objective` (default: a
    classifier that outputs logits, on one-hot labels), for `cfg.epochs` epochs of
    `steps_per_epoch` steps (`train_ds` may be endless) under the warm-up + cosine schedule of
    `learning_rate`.

    A killed run resumes from `backup_dir` (BackupAndRestore) on the next call; the per-epoch
    history lands atomically in `history_csv` when training completes. BatchNorm statistics are
    then recalibrated on `calibration_ds` (clean training batches) when given.
    `steps_per_execution` (a divisor of `steps_per_epoch`) defaults to `execution_steps`'.
    """
    strategy = setup_runtime(base)
    implicit = strategy is tf.distribute.get_strategy()  # TF's default: no scope entered yet
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    # Keras 3.15's multi-step loop fails under the mirrored strategies, one worker or several
    # ("You must feed a value for placeholder tensor ... while/cond/Placeholder"): one step per
    # call there.
    mirrored = isinstance(strategy, (tf.distribute.MirroredStrategy,
                                     tf.distribute.MultiWorkerMirroredStrategy))
    spe = 1 if mirrored else steps_per_execution or execution_steps(steps_per_epoch)
    with strategy.scope():
        model = build()
        model.compile(
            # With cfg.ema, Keras' fit ends by writing the averaged weights into the model
            # (before the BatchNorm recalibration below, which then fits them).
            optimizer=keras.optimizers.Adam(learning_rate(cfg, cfg.epochs * steps_per_epoch),
                                            use_ema=cfg.ema > 0, ema_momentum=cfg.ema or 0.99),
            loss=objective.loss(cfg),
            metrics=objective.metrics(model),
            jit_compile=distribute.jit_compile(base),
            steps_per_execution=1,  # what the model keeps and saves; training sets spe below
        )
        if implicit or multi_worker:  # others get the same from Keras' own symbolic build
            _build_state(model, objective)
    if multi_worker:
        # Keras 3.15's fit builds a model under a strategy from a sample batch averaged across
        # replicas in eager mode, which MultiWorkerMirroredStrategy rejects ("Attempt to convert
        # a value (PerReplica...)"); everything it would build exists now.
        model._maybe_symbolic_build = lambda *args, **kwargs: None
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    partial_csv = backup_dir / "history.csv"
    if train_ds.cardinality() >= 0:  # one epoch's batches: the same epochs as one stream
        train_ds = train_ds.repeat()
    done = resume_point(backup_dir / "state", partial_csv)
    if done:
        log.info("resuming %s after epoch %d of %d from its backup (%s)", model.name, done,
                 cfg.epochs, backup_dir)
        if train_ds.cardinality() == tf.data.INFINITE_CARDINALITY:
            # A new process starts the stream over: skip what the restored epochs drew, so
            # epoch `done` + 1 gets the batches (order, copy, mixing) it would have had.
            train_ds = train_ds.skip(done * steps_per_epoch)
        else:
            log.warning("%s: the training stream's length is unknown, so the resumed epochs "
                        "start it over (results differ from an uninterrupted run)", model.name)
    cbs = [
        StopOnNonFinite(model.name),  # first: nothing after it sees a diverged epoch
        # The epoch's row before the backup that counts it: a kill between the two then leaves
        # a row too many, which the resume cuts, never a backup whose history lacks a row.
        keras.callbacks.CSVLogger(str(partial_csv), append=True),  # append: survives a resume
        ThrottledBackup(str(backup_dir / "state"), BACKUP_EVERY_S),
        *callbacks,
    ]
    if cfg.patience:
        cbs.append(keras.callbacks.EarlyStopping(patience=cfg.patience, restore_best_weights=True))
    n_train = sum(int(p.numpy()) for p in map(tf.size, model.trainable_weights))
    log.info("training %s: %d epochs x %d steps, peak lr=%g (%s%s), %s trainable parameters",
             model.name, cfg.epochs, steps_per_epoch, cfg.learning_rate, cfg.schedule,
             f", weight EMA {cfg.ema:g}" if cfg.ema else "", f"{n_train:,}")
    # Only fit runs `spe` steps per call. Keras' fit and evaluate loop over the steps in one
    # graph, but its predict unrolls steps_per_execution copies of the forward pass into one
    # graph (and again for a shorter last call): every later predict of a 16-step GoogLeNet
    # traced 16 + 4 forward passes, ~10 s, in each stage that loaded it. The results are the same.
    model.steps_per_execution = spe
    # shuffle=False: the tf.data pipeline already reshuffles every epoch.
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=cbs,
                  shuffle=False, steps_per_epoch=steps_per_epoch,
                  verbose=1 if sys.stdout.isatty() else 2)
    except tf.errors.ResourceExhaustedError as err:
        raise RuntimeError(
            f"{model.name}: out of memory at batch size {cfg.batch_size}: lower the stage's "
            "batch_size in params.yaml (per_arch for one architecture), or on a GPU keep "
            f"base.mixed_precision on ({err.message.splitlines()[0][:200]})") from err
    finally:
        model.steps_per_execution = 1
    if calibration_ds is not None:
        n = recalibrate_batchnorm(model, calibration_ds, cfg.bn_recalibration_batches)
        if n:
            log.info("recalibrated %d BatchNorm layers on %d batches", n,
                     cfg.bn_recalibration_batches)
    with atomic_path(history_csv) as tmp:
        shutil.copyfile(partial_csv, tmp)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return model


# What a .keras file says it was saved at, and where its renumbered shared-object ids start:
# both as long as what Keras writes (a date, a 15-digit CPython id), so the file's size, which
# the leaderboard reports, stays what Keras' own save gives.
