"""Benchmarks: is training ever input-bound?

`bench_data` measures, in one process and on the same data, images/s of the training input
pipeline (augmented shards, shuffling, mixup/CutMix, batching) against images/s of a training
step of the zoo's fastest model, and reports the ratio (target: ≥ 5×).
"""

from __future__ import annotations

import logging
import time

import keras
import tensorflow as tf

from cnnzoo.config import Params
from cnnzoo.data.serving_input import to_unit

log = logging.getLogger(__name__)
TARGET_RATIO = 5.0


def _rate(step, batches: int, batch_size: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    return batches * batch_size / (time.perf_counter() - start)


def fastest_arch(params: Params, input_shape: tuple[int, ...], num_classes: int) -> str:
    """The configured architecture with the fewest multiply-accumulates per image."""
    from cnnzoo.models import create_model
    from cnnzoo.models.cost import total_macs

    return min(params.base.archs, key=lambda a: total_macs(create_model(
        a, input_shape=input_shape, num_classes=num_classes, **params.model_kwargs(a))))


def bench_data(params: Params, prepared: str, augmented: str, batches: int = 50) -> dict:
    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.models import create_model
    from cnnzoo.stages.training import training_data
    from cnnzoo.training.distribute import jit_compile

    meta = load_meta(prepared)
    k = len(meta["task_a"]["classes"])
    x, y = load_split(prepared, "a_train")
    cfg = params.pretrain
    ds, _ = training_data(x, y, task="a", num_classes=k, cfg=cfg.model_copy(update={"augment": True}),
                          augmented=augmented, seed=params.base.seed)
    it = iter(ds.repeat())
    pipeline = _rate(lambda: next(it), batches, cfg.batch_size)

    arch = fastest_arch(params, tuple(meta["image_shape"]), k)
    model = create_model(arch, input_shape=tuple(meta["image_shape"]), num_classes=k,
                         **params.model_kwargs(arch))
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile(params.base))
    xb = tf.constant(to_unit(x[: cfg.batch_size]))
    yb = tf.one_hot(y[: cfg.batch_size], k)
    step = _rate(lambda: model.train_on_batch(xb, yb), batches, cfg.batch_size)
    result = {"pipeline_images_per_s": pipeline, "train_step_images_per_s": step,
              "ratio": pipeline / step, "model": arch, "batch_size": cfg.batch_size,
              "batches": batches, "target_ratio": TARGET_RATIO}
    return result
