"""Where training runs: the distribution strategy, XLA, and a fix that lets Keras 3 fit under
TensorFlow's MultiWorkerMirroredStrategy.

`base.distribute`: `default` (one device), `mirrored` (synchronous replicas on every GPU, or on
every logical CPU device of a process that split its CPU), `multi_worker` (one replica per
worker process, the cluster described by TF_CONFIG), `auto` (multi_worker under TF_CONFIG,
mirrored on more than one GPU, default otherwise). The configured batch size is the *global*
batch: each of R replicas computes batch_size / R examples per step, and the step averages their
gradients, so one worker and two take the same optimizer steps on the same data (docs/scaling.md).
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

from cnnzoo.config import BaseConfig


def gpus() -> list:
    return tf.config.list_physical_devices("GPU")


def mode(base: BaseConfig) -> str:
    """`base.distribute` resolved (see the module docstring)."""
    if base.distribute != "auto":
        return base.distribute
    return "multi_worker" if "TF_CONFIG" in os.environ else "mirrored" if len(gpus()) > 1 \
        else "default"


@functools.cache
def _create(kind: str) -> tf.distribute.Strategy:
    if kind == "multi_worker":
        _fix_keras_multi_worker_logs()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        devices = None if gpus() else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def strategy(base: BaseConfig) -> tf.distribute.Strategy:
    """The process's strategy, created once. Training stages create it before any other
    TensorFlow work (`stages.common.run_stage`): MultiWorkerMirroredStrategy configures the
    collective ops, which TensorFlow allows only at program start."""
    return _create(mode(base))


def jit_compile(base: BaseConfig) -> bool:
    """XLA: `auto` = on with a GPU, off on CPU (measured ~2x slower on a 2-core CPU)."""
    return bool(gpus()) if base.jit_compile == "auto" else base.jit_compile


def _fix_keras_multi_worker_logs() -> None:
    """Keras 3.15 averages each step's logs (loss, metrics: scalars) across workers with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on a scalar ("Invalid reduction dimension 0
    for input with 0 dimensions", tensorflow/tensorflow#72388, open): `fit` never ran under
    MultiWorkerMirroredStrategy. Averaging with axis=None is what the code means (the mean
    over replicas, as Keras does under MirroredStrategy)."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "cnnzoo_fixed", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.cnnzoo_fixed = True
    trainer.reduce_per_replica = reduce_per_replica
