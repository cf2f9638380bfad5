"""The mobile export's measurements: every TFLite variant against its Keras model.

1. Pick the int8 weight granularity (`export.int8_scales`): `auto` tries per-tensor scales
   (the smaller file) and keeps them unless they lose more than `max_drop` on the validation
   split, else converts per-channel.
2. Evaluate every variant on the whole test split through LiteRT (the parity gate's numbers).
3. Time batch-1 latency per variant and thread count (XNNPACK, host CPU).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import keras
import numpy as np

from cnnzoo.config import ExportConfig
from cnnzoo.deploy import convert
from cnnzoo.tasks.intervals import mean_interval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32 images in [0, 1]
    y: np.ndarray


def accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(predicted == y))


def keras_classes(net: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.argmax(net.predict(x, batch_size=256, verbose=0), axis=-1)


def _lite(content: bytes) -> convert.LiteModel:
    """An interpreter for evaluation: every core (on 2 cores, 30-45% less time per image for
    the larger models; latency is timed separately per thread count)."""
    return convert.LiteModel(content, num_threads=os.cpu_count() or 1)


def _int8_granularity(net: keras.Model, files: dict[str, bytes], cfg: ExportConfig,
                      x_rep: np.ndarray, val: Split,
                      keras_val: float) -> tuple[str, dict[str, float]]:
    """Step 1. `files` holds the per-tensor int8 model for `auto`; replaced when it loses."""
    if cfg.int8_scales != "auto":
        return cfg.int8_scales, {}
    tensor_val = accuracy(val.y, _lite(files["int8"]).predict_classes(val.x))
    checked = {"keras_val_accuracy": keras_val, "per_tensor_val_accuracy": tensor_val}
    if keras_val - tensor_val <= cfg.max_drop:
        return "per_tensor", checked
    log.info("per-tensor int8 loses %.4f on validation (%.4f -> %.4f): converting per-channel",
             keras_val - tensor_val, keras_val, tensor_val)
    files["int8"] = convert.convert(net, "int8", x_rep, per_channel=True)
    return "per_channel", checked


def convert_and_measure(net: keras.Model, cfg: ExportConfig, *, x_rep: np.ndarray, val: Split,
                        test: Split, name: str,
                        keras_accuracy: float | None = None) -> tuple[dict[str, bytes], dict]:
    """All of `convert.VARIANTS` as bytes, and their metrics: per variant size, test accuracy,
    drop against Keras and latency; `int8_scales`; `float_ops` of the int8 model. The caller
    applies the gate (`gate_failures`), so a failing export is still measured and logged.
    `keras_accuracy`: the Keras model's accuracy on `test` when already known (the evaluate
    stage's), which saves a forward pass over the test split."""
    files = convert.convert_all(net, convert.VARIANTS, x_rep,
                                 per_channel=cfg.int8_scales == "per_channel")
    if keras_accuracy is None:  # one Keras pass over both splits (`predict` traces each call)
        predicted = keras_classes(net, np.concatenate([val.x, test.x]))
        keras_val = accuracy(val.y, predicted[:len(val.y)])
        keras_acc = accuracy(test.y, predicted[len(val.y):])
    else:
        keras_val, keras_acc = accuracy(val.y, keras_classes(net, val.x)), keras_accuracy
    scales, checked = _int8_granularity(net, files, cfg, x_rep, val, keras_val)
    result: dict = {"keras_accuracy": keras_acc, "test_images": len(test.y),
                    "int8_scales": scales, **checked}
    for variant in convert.VARIANTS:
        lite = _lite(files[variant])
        correct = lite.predict_classes(test.x, desc=f"{name} {variant}") == test.y
        acc = float(correct.mean())
        latency = _latency(files[variant], test.x[0], cfg)
        result[variant] = {"size_bytes": len(files[variant]), "accuracy": acc,
                           "accuracy_ci": mean_interval(correct), "drop": keras_acc - acc,
                           "latency": latency}
        log.info("export %s %-12s %8.1f KB  accuracy %.4f (Keras %.4f)  %s", name, variant,
                 len(files[variant]) / 1024, acc, keras_acc,
                 "  ".join(f"{k} {v:.3f} ms" for k, v in latency.items() if "median" in k))
    result["int8"]["float_ops"] = convert.float_ops(files["int8"])
    result["int8_size_ratio"] = len(files["float32"]) / len(files["int8"])
    return files, result


def _latency(content: bytes, img: np.ndarray, cfg: ExportConfig) -> dict[str, float]:
    latency = {}
    for threads in cfg.latency_threads:
        timed = convert.LiteModel(content, num_threads=threads)
        for stat, ms in timed.latency(img, cfg.latency_runs).items():
            latency[f"{threads}t_{stat}"] = ms
    return latency


def convert_and_score(net: keras.Model, variants: tuple[str, ...], cfg: ExportConfig, *,
                      x_rep: np.ndarray, score, metric: str, name: str,
                      keras_value: float | None = None) -> tuple[dict[str, bytes], dict]:
    """`convert_and_measure` for any model and metric: `score(predict)` computes `metric` from
    a `predict(float images) -> outputs` callable (the Keras model's, then each variant's
    through LiteRT). Per variant: size, the metric, its drop against Keras, latency."""
    files = convert.convert_all(net, variants, x_rep)
    if keras_value is None:
        keras_value = score(lambda x: net.predict(x, batch_size=64, verbose=0))
    result: dict = {"metric": metric, f"keras_{metric}": keras_value}
    for variant in variants:
        value = score(_lite(files[variant]).predict_logits)
        result[variant] = {"size_bytes": len(files[variant]), metric: value,
                           "drop": keras_value - value,
                           "latency": _latency(files[variant], x_rep[0], cfg)}
        log.info("export %s %-12s %8.1f KB  %s %.4f (Keras %.4f)", name, variant,
                 len(files[variant]) / 1024, metric, value, keras_value)
    return files, result


def gate_failures(result: dict, max_drop: float, metric: str = "accuracy") -> list[str]:
    """The parity gate: one line per variant that lost more than `max_drop` of `metric`."""
    variants = [v for v in convert.VARIANTS if v in result]
    return [f"{variant} {metric} {result[variant][metric]:.4f} is "
            f"{result[variant]['drop']:.4f} below the Keras model's "
            f"{result[f'keras_{metric}']:.4f} (export.max_drop={max_drop})"
            for variant in variants if result[variant]["drop"] > max_drop]
