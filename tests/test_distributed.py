"""Training under TensorFlow's distribution strategies, for real: two worker processes on
loopback (MultiWorkerMirroredStrategy, TF_CONFIG), two logical CPU devices (MirroredStrategy),
mixed precision and XLA's `auto`. Each run is `train.fit` in tests/distributed_worker.py."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from cnnzoo.config import BaseConfig, TrainConfig
from cnnzoo.data.datasets import copies_dataset, make_dataset
from cnnzoo.files import read_csv
from cnnzoo.models import create_model
from cnnzoo.training import distribute
from cnnzoo.training.loop import fit
from tests.test_strategies import _toy_task

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = WORKER.parent.parent


def _start(mode: str, out: Path, *extra: str, tf_config: dict | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, str(WORKER), mode, str(out), *extra], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc) -> list[int]:
    """Waits for a worker; returns the per-replica batch sizes its training steps printed."""
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return [int(line.split(":")[1]) for line in out.splitlines()
            if line.startswith("replica batch:")]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _losses(out: Path) -> np.ndarray:
    rows = read_csv(out / "history.csv")
    return np.array([[float(r["loss"]), float(r["val_loss"])] for r in rows])


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One worker, one device, the same global batch (64): the reference trajectory."""
    out = tmp_path_factory.mktemp("single")
    batches = _finish(_start("default", out))
    assert batches == [64] * 32  # 4 epochs x 8 steps
    return out, batches


def test_two_workers_on_loopback_follow_the_single_worker_trajectory(single, tmp_path):
    """Two processes, one cluster (TF_CONFIG), each computing half of every global batch of 64
    and averaging gradients: the per-epoch training and validation losses of the one-worker
    run, to float rounding."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = [_start("multi_worker", tmp_path / f"w{i}",
                    tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
             for i in range(2)]
    batches = [_finish(proc) for proc in procs]
    reference = _losses(single[0])
    assert reference[-1, 0] < 0.6 * reference[0, 0]  # it learnt: a trajectory, not a constant
    for i in range(2):
        runtime = json.loads((tmp_path / f"w{i}/runtime.json").read_text())
        assert runtime == {"replicas": 2, "strategy": "multi_worker"}
        assert batches[i] == [32] * len(single[1])  # half of each global batch, every step
        np.testing.assert_allclose(_losses(tmp_path / f"w{i}"), reference, rtol=1e-4)


def test_mirrored_on_two_logical_cpus_follows_the_single_device_trajectory(single, tmp_path):
    batches = _finish(_start("mirrored", tmp_path, "--logical-cpus", "2"))
    runtime = json.loads((tmp_path / "runtime.json").read_text())
    assert runtime == {"replicas": 2, "strategy": "mirrored"}
    assert batches == [32] * 2 * len(single[1])  # both replicas print, each half a batch
    np.testing.assert_allclose(_losses(tmp_path), _losses(single[0]), rtol=1e-4)


def test_mixed_precision_keeps_float32_logits_and_scales_the_loss(tmp_path):
    """mixed_float16: convolutions compute in float16, the logits (and so the loss) stay float32
    and the optimizer scales the loss against float16 gradient underflow."""
    x, y = _toy_task(64, 0)
    ds, steps = copies_dataset(x[None], y, batch_size=32, num_classes=5, seed=0)
    try:
        model = fit(lambda: create_model("resnet20", input_shape=(32, 32, 1), num_classes=5,
                                         width=0.25), ds,
                    make_dataset(x, y, batch_size=64, num_classes=5),
                    TrainConfig(epochs=1, bn_recalibration_batches=0),
                    BaseConfig(archs=["resnet20"], mixed_precision="on"),
                    history_csv=tmp_path / "h.csv", backup_dir=tmp_path / "b",
                    steps_per_epoch=steps)
        assert model.get_layer("stem_conv").compute_dtype == "float16"
        assert model.get_layer("stem_conv").kernel.dtype == "float32"
        assert model.output.dtype == "float32"
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert np.isfinite(float(read_csv(tmp_path / "h.csv")[0]["loss"]))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_xla_auto_is_on_only_with_a_gpu():
    cpu_only = not distribute.gpus()
    assert distribute.jit_compile(BaseConfig(archs=["lenet5"])) is not cpu_only  # auto
    assert distribute.jit_compile(BaseConfig(archs=["lenet5"], jit_compile=True)) is True
    assert distribute.jit_compile(BaseConfig(archs=["lenet5"], jit_compile=False)) is False


def test_only_the_chief_of_a_cluster_records_mlflow_runs(monkeypatch):
    """N workers train one model: one MLflow run, from worker 0 (or the `chief` task)."""
    from cnnzoo.tracking.client import is_chief

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    workers = {"worker": ["a:1", "b:1"]}
    for cluster, task, want in ((workers, {"type": "worker", "index": 0}, True),
                                (workers, {"type": "worker", "index": 1}, False),
                                ({**workers, "chief": ["c:1"]}, {"type": "worker", "index": 0},
                                 False),
                                ({**workers, "chief": ["c:1"]}, {"type": "chief", "index": 0},
                                 True)):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert is_chief() is want, (cluster, task)
