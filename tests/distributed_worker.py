"""One training process for tests/test_distributed.py: the project's `loop.fit` on a fixed toy
task under `base.distribute` = MODE, writing the per-epoch history to OUT/history.csv.

    python tests/distributed_worker.py MODE OUT [--logical-cpus N]

A worker of a multi-worker cluster reads its place from TF_CONFIG, as on real machines.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

p = argparse.ArgumentParser()
p.add_argument("mode")
p.add_argument("out", type=Path)
p.add_argument("--logical-cpus", type=int, default=1)
p.add_argument("--precision", default="off")
args = p.parse_args()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

if args.logical_cpus > 1:  # before TensorFlow initialises its devices
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cnnzoo.config import BaseConfig, TrainConfig  # noqa: E402
from cnnzoo.data.datasets import copies_dataset, make_dataset  # noqa: E402
from cnnzoo.models import create_model  # noqa: E402
from cnnzoo.training import distribute, loop  # noqa: E402
from tests.test_strategies import _toy_task  # noqa: E402

base = BaseConfig(archs=["lenet5"], seed=11, distribute=args.mode,
                  mixed_precision=args.precision)
strategy = distribute.strategy(base)  # first: collective ops are configured at program start
x, y = _toy_task(512, 0)
ds, steps = copies_dataset(x[None], y, batch_size=64, num_classes=5, seed=11)
cfg = TrainConfig(epochs=4, batch_size=64, learning_rate=0.003, bn_recalibration_batches=0)
args.out.mkdir(parents=True, exist_ok=True)
class Probe(keras.layers.Layer):
    """Prints each training step's per-replica batch size (the test reads them)."""

    def call(self, x, training=None):
        if training:
            tf.print("replica batch:", tf.shape(x)[0], output_stream=sys.stdout)
        return x


def build():
    net = create_model("lenet5", input_shape=(32, 32, 1), num_classes=5)
    inputs = keras.Input((32, 32, 1))
    return keras.Model(inputs, net(Probe()(inputs)), name="lenet5")


model = loop.fit(build, ds,
                  make_dataset(x[:128], y[:128], batch_size=128, num_classes=5), cfg, base,
                  history_csv=args.out / "history.csv", backup_dir=args.out / "backup",
                  steps_per_epoch=steps)
(args.out / "runtime.json").write_text(json.dumps({
    "replicas": strategy.num_replicas_in_sync, "strategy": distribute.mode(base)}))
