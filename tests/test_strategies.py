"""Transfer strategies: blocks per family, the linear probe on precomputed features, schedules."""

import keras
import numpy as np
import pytest

from cnnzoo.config import BaseConfig, TrainConfig
from cnnzoo.data.datasets import copies_dataset, make_dataset
from cnnzoo.models import create_model
from cnnzoo.stages.training import calibration_set
from cnnzoo.training import backbones
from cnnzoo.training.loop import (
    ThrottledBackup,
    TrainingDiverged,
    fit,
    learning_rate,
    plan_epochs,
    recalibrate_batchnorm,
)


def test_fine_tune_top_unfreezes_whole_blocks_by_name():
    net = backbones.with_new_head(create_model("resnet20", input_shape=(32, 32, 1), num_classes=3,
                                               width=0.25), 5)
    backbones.unfreeze(net, 1)
    trainable = {w.path.split("/")[0] for w in net.trainable_weights}
    assert trainable == {"stage3_block3_1_conv", "stage3_block3_1_bn", "stage3_block3_2_conv",
                         "stage3_block3_2_bn", "head"}
    groups = backbones.blocks(net.get_layer(backbones.backbone_name(net)), "resnet")
    assert [g[0].name for g in groups[:2]] == ["stem_conv", "stage1_block1_1_conv"]
    assert len(groups) == 10  # stem + 3 stages x 3 blocks


def test_only_unfrozen_batchnorm_layers_adapt_to_the_target():
    net = backbones.with_new_head(create_model("resnet20", input_shape=(32, 32, 1), num_classes=3,
                                               width=0.25), 5)
    tuned = backbones.unfreeze(net, 1, adapt_batchnorm=True)
    backbone = tuned.get_layer(backbones.backbone_name(tuned))
    top, frozen = backbone.get_layer("stage3_block3_1_bn"), backbone.get_layer("stem_bn")
    before = [np.array(lyr.moving_mean) for lyr in (top, frozen)]
    tuned(np.random.default_rng(0).random((8, 32, 32, 1), dtype=np.float32) * 3, training=True)
    assert not np.allclose(np.array(top.moving_mean), before[0])  # learns B's statistics
    np.testing.assert_array_equal(np.array(frozen.moving_mean), before[1])  # inference mode
    assert tuned.get_layer("head") is net.get_layer("head")


def _toy_task(n: int, seed: int):
    """5 classes: a bright 8x8 patch at a class-specific place, under noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    x = rng.normal(100, 60, (n, 32, 32, 1))
    for i, c in enumerate(y):
        r, col = divmod(int(c), 3)
        x[i, 4 + 12 * r: 12 + 12 * r, 2 + 10 * col: 10 + 10 * col] += 90
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int32)


def test_head_on_precomputed_features_matches_the_streaming_path(tmp_path):
    """The lecture's shortcut: features of the frozen backbone computed once, then the head
    trained on them, reaches the accuracy of training the head through the frozen network."""
    x, y = _toy_task(600, 0)
    x_val, y_val = _toy_task(400, 1)
    keras.utils.set_random_seed(0)  # the random "pretrained" features, whatever ran before
    pretrained = create_model("lenet5", input_shape=(32, 32, 1), num_classes=3)
    cfg = TrainConfig(epochs=8, batch_size=32, learning_rate=0.01, bn_recalibration_batches=0)
    base = BaseConfig(archs=["lenet5"], seed=3)
    copies = np.stack([x, x[:, :, ::-1]])  # two "augmented" copies (mirrored)

    backbone = backbones.extract_backbone(pretrained)
    feats = backbones.features(backbone, copies)
    assert feats.shape == (2, 600, 84)
    ds, steps = copies_dataset(feats, y, batch_size=32, num_classes=5, seed=3)
    head = fit(lambda: backbones.head_model(84, 5, "lenet5"), ds,
               make_dataset(backbones.features(backbone, x_val), y_val, batch_size=256, num_classes=5),
               cfg, base, history_csv=tmp_path / "a.csv", backup_dir=tmp_path / "a",
               steps_per_epoch=steps)
    probe = backbones.attach_head(pretrained, head)

    ds, steps = copies_dataset(copies, y, batch_size=32, num_classes=5, seed=3)
    val = make_dataset(x_val, y_val, batch_size=256, num_classes=5)
    streamed = fit(lambda: backbones.with_new_head(pretrained, 5), ds, val, cfg, base,
                   history_csv=tmp_path / "b.csv", backup_dir=tmp_path / "b",
                   steps_per_epoch=steps)
    acc = [float(np.mean(np.argmax(m.predict(x_val / np.float32(255), verbose=0), -1) == y_val))
           for m in (probe, streamed)]
    assert acc[0] > 0.6 and acc[1] > 0.6  # both learnt (chance 0.2; 0.76-0.82 over 4 seeds)
    assert abs(acc[0] - acc[1]) < 0.05, acc  # same computation, different order of work


def test_schedule_warms_up_then_decays_and_min_steps_adds_epochs():
    cfg = TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, warmup=0.1, min_steps=100)
    assert plan_epochs(cfg, 100) == (25, 4)  # 4 steps per epoch -> 25 epochs for 100 steps
    # From 200 steps on, epochs hold whole calls of 8 steps: 313 -> 312 (epoch_steps).
    assert plan_epochs(cfg, 10_000) == (2, 312) and plan_epochs(cfg, 6_300) == (2, 197)
    lr = learning_rate(cfg, 100)
    assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(0.01)
    assert float(lr(55)) == pytest.approx(0.005, rel=1e-3) and float(lr(100)) < 1e-6
    assert learning_rate(cfg.model_copy(update={"schedule": "constant"}), 100) == 0.01


def test_per_arch_overrides_are_validated():
    cfg = TrainConfig(epochs=2, per_arch={"lenet5": {"epochs": 6, "images": 100}})
    assert cfg.for_arch("lenet5").epochs == 6 and cfg.for_arch("vgg11").epochs == 2
    with pytest.raises(ValueError, match=r"per_arch.lenet5: unknown key\(s\) \['epoch'\]"):
        TrainConfig(epochs=2, per_arch={"lenet5": {"epoch": 6}})


def test_fit_traces_the_train_step_once(tmp_path):
    """Optimizer slots and metric variables exist before the first trace, so tf.function does
    not trace the whole network's train step twice (seconds per stage on a 2-core CPU)."""
    x, y = _toy_task(64, 0)
    traced = []

    def build():
        model = create_model("lenet5", input_shape=(32, 32, 1), num_classes=5)
        step = model.train_step
        model.train_step = lambda data: (traced.append(1), step(data))[1]
        return model

    ds, steps = copies_dataset(x[None], y, batch_size=32, num_classes=5, seed=0)
    model = fit(build, ds, make_dataset(x, y, batch_size=64, num_classes=5),
                TrainConfig(epochs=2, bn_recalibration_batches=0), BaseConfig(archs=["lenet5"]),
                history_csv=tmp_path / "h.csv", backup_dir=tmp_path / "b", steps_per_epoch=steps)
    assert len(traced) == 1
    assert model.optimizer.iterations.numpy() == 2 * steps


@pytest.mark.parametrize(("every_s", "saved"), [(0.0, [True, True, True]), (3600.0, [False] * 3)])
def test_backup_is_taken_at_epoch_ends_at_most_every_so_often(tmp_path, every_s, saved):
    state = tmp_path / "state"
    seen = []
    probe = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda *_: seen.append(state.is_dir() and any(state.iterdir())))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x = np.zeros((8, 4), np.float32)
    model.fit(x, np.zeros((8, 2), np.float32), epochs=3, verbose=0,
              callbacks=[ThrottledBackup(str(state), every_s), probe])
    assert seen == saved
    assert not state.exists()  # removed once training completed, as Keras' callback does


def test_an_absurd_learning_rate_stops_training_with_where_and_why(tmp_path):
    """A diverged loss stops the stage (no history, no model) and says at which epoch, batch
    and learning rate, and what to change."""
    x, y = _toy_task(64, 0)
    ds, steps = copies_dataset(x[None], y, batch_size=16, num_classes=5, seed=0)
    cfg = TrainConfig(epochs=3, learning_rate=1e38, schedule="constant", bn_recalibration_batches=0)
    with pytest.raises(TrainingDiverged, match=r"lenet5: training diverged, loss (nan|inf) at "
                       r"epoch 1, batch \d+ \(learning rate 1e\+38\); lower the stage's "
                       r"learning_rate"):
        fit(lambda: create_model("lenet5", input_shape=(32, 32, 1), num_classes=5), ds,
            make_dataset(x, y, batch_size=64, num_classes=5), cfg, BaseConfig(archs=["lenet5"]),
            history_csv=tmp_path / "h.csv", backup_dir=tmp_path / "b", steps_per_epoch=steps)
    assert not (tmp_path / "h.csv").exists()


def test_every_backup_counts_only_epochs_its_history_holds(tmp_path, monkeypatch):
    """The epoch's history row is written before the backup that counts it (a kill between the
    two once left a backup of epoch 1 with an empty history), and a backup whose history is
    short of its epochs is discarded rather than resumed into a history with a row missing."""
    from cnnzoo.training import loop

    rows_at_save = []
    save = loop.ThrottledBackup._save_model

    def probe(self):
        rows_at_save.append((self._current_epoch, len(
            (tmp_path / "b/history.csv").read_text().splitlines()) - 1))
        save(self)

    monkeypatch.setattr(loop, "BACKUP_EVERY_S", 0.0)
    monkeypatch.setattr(loop.ThrottledBackup, "_save_model", probe)
    x, y = _toy_task(64, 1)
    ds = make_dataset(x, y, batch_size=16, num_classes=5)
    fit(lambda: create_model("lenet5", input_shape=(32, 32, 1), num_classes=5), ds, ds,
        TrainConfig(epochs=2, batch_size=16, bn_recalibration_batches=0),
        BaseConfig(archs=["lenet5"]), history_csv=tmp_path / "h.csv",
        backup_dir=tmp_path / "b", steps_per_epoch=4)
    assert rows_at_save == [(1, 1), (2, 2)]

    state, csv = tmp_path / "k/state", tmp_path / "k/history.csv"
    state.mkdir(parents=True)
    (state / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    csv.write_bytes(b"epoch,loss\r\n0,1.5\r\n1,1.2\r\n2,1.1\r\n")
    assert loop.resume_point(state, csv) == 2  # the row after the backup is trained again
    assert csv.read_bytes() == b"epoch,loss\r\n0,1.5\r\n1,1.2\r\n"
    (state / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    assert loop.resume_point(state, csv) == 0
    assert not state.exists() and not csv.exists()


class _Kill(keras.callbacks.Callback):
    """Stands in for SIGKILL in-process: stops `fit` in the middle of epoch `epoch` (1-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.kill_at, self.epoch = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of a call of steps_per_execution steps (all 6 of the toy
        # epoch in one call): killed after it, before the epoch's end and its backup.
        if self.epoch == self.kill_at and batch >= 1:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights_and_history(tmp_path, monkeypatch,
                                                                        ema):
    """Stopped in epoch 3 with a backup after epoch 1 (epoch 2 logged but not backed up), the
    next call restores epoch 1's weights and optimizer (with `ema`, its moving averages too),
    skips the batches epochs 1-2 drew from the endless augmented stream (mixup included) and
    ends on the weights and per-epoch history of an uninterrupted run."""
    from cnnzoo.config import AugmentConfig
    from cnnzoo.data.augment import batch_mixer
    from cnnzoo.training import loop

    x, y = _toy_task(96, 0)
    mixer = batch_mixer(AugmentConfig(mixup_alpha=0.2))
    cfg = TrainConfig(epochs=4, batch_size=16, learning_rate=0.003, bn_recalibration_batches=0,
                      ema=ema)
    base = BaseConfig(archs=["resnet20"], seed=5)

    def run(name, callbacks=()):
        keras.utils.set_random_seed(5)  # the stream's global seed, as in a fresh process
        ds, steps = copies_dataset(np.stack([x, x[:, ::-1]]), y, batch_size=16, num_classes=5,
                                   seed=5, mixer=mixer)
        return fit(lambda: create_model("resnet20", input_shape=(32, 32, 1), num_classes=5,
                                        width=0.25), ds,
                   make_dataset(x[:32], y[:32], batch_size=32, num_classes=5), cfg, base,
                   history_csv=tmp_path / f"{name}.csv", backup_dir=tmp_path / name,
                   steps_per_epoch=steps, callbacks=callbacks)

    whole = run("whole")
    clock = iter([0.0])  # 100 s at every epoch end: only epoch 1's is 30 s after the start
    monkeypatch.setattr(loop.time, "monotonic", lambda: next(clock, 100.0))
    with pytest.raises(KeyboardInterrupt):
        run("killed", [_Kill(3)])
    monkeypatch.undo()
    assert len((tmp_path / "killed/history.csv").read_text().splitlines()) == 1 + 2
    resumed = run("killed")
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "killed.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert not (tmp_path / "killed").exists()


def test_training_runs_whole_executions_of_the_epoch():
    """steps_per_execution divides the epoch (Keras would run a whole last call past its end)."""
    from cnnzoo.training.loop import execution_steps

    assert [execution_steps(n) for n in (1, 7, 48, 50, 312, 313, 424)] == [1, 7, 16, 10, 13, 1, 8]


def test_only_training_runs_several_steps_per_call(tmp_path):
    """fit trains 4 steps per call (4 batch-end callbacks for 16 steps), but the model it returns,
    and saves, predicts one batch per call: Keras' predict would unroll 4 forward passes into
    one graph, with the same numbers."""
    x, y = _toy_task(64, 1)
    calls = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(batch)

    ds = make_dataset(x, y, batch_size=16, num_classes=5)
    model = fit(lambda: create_model("lenet5", input_shape=(32, 32, 1), num_classes=5), ds, ds,
                TrainConfig(epochs=4, batch_size=16, bn_recalibration_batches=0),
                BaseConfig(archs=["lenet5"]), history_csv=tmp_path / "h.csv",
                backup_dir=tmp_path / "b", steps_per_epoch=4, callbacks=[Count()])
    assert len(calls) == 4  # one call of 4 steps per epoch
    assert model.steps_per_execution == 1
    assert model.get_compile_config()["steps_per_execution"] == 1
    single = model.predict(x, batch_size=8, verbose=0)
    model.steps_per_execution, model.predict_function = 4, None
    np.testing.assert_array_equal(model.predict(x, batch_size=8, verbose=0), single)


def test_batchnorm_statistics_can_come_from_unlabelled_pool_images():
    """bn_recalibration_pool: task B's few labelled images are not all BatchNorm learns its
    statistics from. The calibration set takes images without labels, and the moving statistics
    become their plain average (not an exponential average that still remembers training)."""
    rng = np.random.default_rng(0)
    pool = rng.normal(120, 30, (640, 4)).clip(0, 255).astype(np.uint8)  # unit scale: /255
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(momentum=0.99)])
    cfg = TrainConfig(epochs=1, batch_size=64, bn_recalibration_batches=10)
    assert recalibrate_batchnorm(model, calibration_set(pool, None, cfg, seed=0), 10) == 1
    bn = model.layers[0]
    np.testing.assert_allclose(np.array(bn.moving_mean), pool.mean(0) / 255, atol=2e-3)
    # The average of 10 batch variances of 64 images: each a little under the pool's.
    np.testing.assert_allclose(np.array(bn.moving_variance), pool.var(0) / 255**2, rtol=0.1)


def test_weight_ema_ends_training_on_the_averaged_weights(tmp_path):
    """`ema` > 0: the model leaves fit with the optimizer's moving average of its weights, not
    the last step's; ema 0 keeps the last step's (same seed, same batches)."""
    x, y = _toy_task(128, 0)
    weights = {}
    for ema in (0.0, 0.9):
        keras.utils.set_random_seed(0)
        ds, steps = copies_dataset(x[None], y, batch_size=32, num_classes=5, seed=0)
        model = fit(lambda: create_model("lenet5", input_shape=(32, 32, 1), num_classes=5), ds,
                    make_dataset(x, y, batch_size=64, num_classes=5),
                    TrainConfig(epochs=2, learning_rate=0.003, ema=ema, bn_recalibration_batches=0),
                    BaseConfig(archs=["lenet5"]), history_csv=tmp_path / f"{ema}.csv",
                    backup_dir=tmp_path / str(ema), steps_per_epoch=steps)
        weights[ema] = [np.array(w) for w in model.trainable_weights]
        if ema:
            averages = model.optimizer._model_variables_moving_average  # Keras' EMA slots
            for w, avg in zip(model.trainable_weights, averages, strict=True):
                np.testing.assert_array_equal(np.array(w), np.array(avg))
    assert not all(np.allclose(a, b) for a, b in zip(weights[0.0], weights[0.9], strict=True))
