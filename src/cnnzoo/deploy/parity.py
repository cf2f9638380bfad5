"""The mobile export's measurements: every TFLite variant against its Keras model.

1. Pick the int8 weight granularity (`export.int8_scales`): `auto` tries per-tensor scales
   (the smaller file) and keeps them unless they lose more than `max_drop` on the validation
   split, else converts per-channel.
2. Evaluate every variant on the whole test split through LiteRT (the parity gate's numbers).
3. Time batch-1 latency per variant and thread count (XNNPACK, host CPU).
4. Debug the int8 model per layer (`cnnzoo.deploy.qdebug`); when it fails the gate and
   `export.repair` is on, keep its worst layers in float, smallest change first, until it is
   within `max_drop` on the validation split; the test split's gate still decides.
5. Where float32 and int8 disagree on the test split: which images, and by what margins.
6. The second runtime (`export.onnx`): the Keras model as ONNX through onnxruntime, measured
   and gated like a TFLite variant.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from cnnzoo.config import ExportConfig
from cnnzoo.deploy import convert, qdebug
from cnnzoo.reporting.quantization import change_text
from cnnzoo.tasks import calibration
from cnnzoo.tasks.intervals import mean_interval

log = logging.getLogger(__name__)

ONNX = "onnx"  # the second runtime's entry beside the TFLite variants


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32 images in [0, 1]
    y: np.ndarray


def accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(predicted == y))


def keras_classes(net: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.argmax(net.predict(x, batch_size=256, verbose=0), axis=-1)


def _keras_val(net: keras.Model, val: Split, test: Split | None) -> tuple[float, np.ndarray,
                                                                          float | None]:
    """The Keras model's validation accuracy and logits, and its test accuracy when `test` is
    given: one pass over both splits (`predict` traces each call)."""
    x = val.x if test is None else np.concatenate([val.x, test.x])
    logits = net.predict(x, batch_size=256, verbose=0)
    predicted = np.argmax(logits, axis=-1)
    test_acc = None if test is None else accuracy(test.y, predicted[len(val.y):])
    return accuracy(val.y, predicted[:len(val.y)]), logits[:len(val.y)], test_acc


def _lite(content: bytes) -> convert.LiteModel:
    """An interpreter for evaluation: every core (on 2 cores, 30-45% less time per image for
    the larger models; latency is timed separately per thread count)."""
    return convert.LiteModel(content, num_threads=os.cpu_count() or 1)


def _int8_granularity(net: keras.Model, files: dict[str, bytes], cfg: ExportConfig, saved: str,
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
    files["int8"] = convert.convert_all(net, ["int8"], x_rep, per_channel=True, saved=saved)["int8"]
    return "per_channel", checked


def convert_and_measure(net: keras.Model, cfg: ExportConfig, *, x_rep: np.ndarray, val: Split,
                        test: Split, name: str, keras_accuracy: float | None = None,
                        temperature: float | None = None) -> tuple[dict[str, bytes], dict]:
    """All of `convert.VARIANTS` as bytes, and their metrics: per variant size, test accuracy,
    drop against Keras and latency; `int8_scales`; the int8 model's `float_ops`, per-layer
    errors (`layers`, `worst_layer`) and `repair`; `disagreement` between float32 and int8.
    The caller applies the gate (`gate_failures`), so a failing export is still measured and
    logged. `keras_accuracy`: the Keras model's accuracy on `test` when already known (the
    evaluate stage's), which saves a forward pass over the test split. The disagreeing test
    images' indices are in `result["disagreement"]["images"]`. `temperature`: the Keras model's
    (the evaluate stage's), else fitted here on `val`; each variant's test ECE is measured
    before and after it."""
    with convert.saved_model(net) as saved:
        files = convert.convert_all(net, convert.VARIANTS, x_rep, saved=saved,
                                     per_channel=cfg.int8_scales == "per_channel")
        keras_val, val_logits, keras_acc = _keras_val(net, val, test if keras_accuracy is None
                                                      else None)
        keras_acc = keras_accuracy if keras_accuracy is not None else keras_acc
        if temperature is None:
            temperature = calibration.fit_temperature(val_logits, val.y)
        scales, checked = _int8_granularity(net, files, cfg, saved, x_rep, val, keras_val)
        per_channel = scales == "per_channel"
        debug = qdebug.Int8Debug(saved, x_rep, x_rep[:cfg.debug_samples],
                                 per_channel=per_channel, layer_names=_layer_names(net))
        result: dict = {"keras_accuracy": keras_acc, "test_images": len(test.y),
                        "int8_scales": scales, "temperature": temperature, **checked}
        logits = {}
        for variant in convert.VARIANTS:
            result[variant], logits[variant] = _measure(files[variant], test, cfg, keras_acc,
                                                         f"{name} {variant}")
            result[variant].update(calibration.ece_record(logits[variant], test.y, temperature))
        int8 = result["int8"]
        int8["layers"] = [e.record() for e in debug.errors]
        int8["worst_layer"] = debug.worst()[0].record()
        repair = None
        if int8["drop"] > cfg.max_drop and cfg.repair:  # replaces result["int8"] when it works
            repair = _repair(debug, files, result, logits, cfg, val, test, keras_val, name,
                             int16=lambda: convert.int16_activations(saved, x_rep, per_channel))
    result["int8"]["repair"] = repair
    result["int8"]["float_ops"] = convert.float_ops(files["int8"])
    result["int8_size_ratio"] = len(files["float32"]) / len(files["int8"])
    result["disagreement"] = disagreement(logits["float32"], logits["int8"], test.y)
    if cfg.onnx:
        from cnnzoo.deploy import onnx_runtime

        files[ONNX] = onnx_runtime.to_onnx(net)
        result[ONNX], onnx_logits = _measure(files[ONNX], test, cfg, keras_acc, f"{name} onnx",
                                             runtime=onnx_runtime.OnnxModel)
        result[ONNX].update(calibration.ece_record(onnx_logits, test.y, temperature))
        result[ONNX]["max_abs_logit_diff_float32"] = float(
            np.abs(onnx_logits - logits["float32"]).max())
    return files, result


def _layer_names(net: keras.Model) -> list[str]:
    """Every layer's name, nested models' layers included; the output layer last."""
    names = [layer.name for layer in net._flatten_layers(include_self=False, recursive=True)]
    return [*names, net.layers[-1].name]


def _measure(content: bytes, test: Split, cfg: ExportConfig, keras_acc: float,
             desc: str, runtime=convert.LiteModel) -> tuple[dict, np.ndarray]:
    """Step 2 and 3 for one file: its metrics and its test logits. `runtime(content,
    num_threads)`: LiteRT's interpreter, or onnxruntime's session for ONNX."""
    # Every core for evaluation (latency is timed per thread count below).
    logits = runtime(content, num_threads=os.cpu_count() or 1).predict_logits(test.x, desc=desc)
    correct = np.argmax(logits, axis=-1) == test.y
    acc = float(correct.mean())
    latency = _latency(content, test.x[0], cfg, runtime)
    log.info("export %-24s %8.1f KB  accuracy %.4f (Keras %.4f)  %s", desc, len(content) / 1024,
             acc, keras_acc, "  ".join(f"{k} {v:.3f} ms" for k, v in latency.items()
                                       if "median" in k))
    return {"size_bytes": len(content), "accuracy": acc, "accuracy_ci": mean_interval(correct),
            "drop": keras_acc - acc, "latency": latency}, logits


def _repair(debug: qdebug.Int8Debug, files: dict[str, bytes], result: dict, logits: dict,
            cfg: ExportConfig, val: Split, test: Split, keras_val: float, name: str,
            int16: Callable[[], bytes]) -> dict:
    """Step 4: the int8 model failed the gate. Tries `debug.candidates`, then `int16()` (16-bit
    activations), on the validation split; the first within `max_drop` replaces the int8 file
    (and its metrics), which the test split's gate then judges as strictly as any other. The
    record names the change (`float_layers`, or `activations`: "int16") and what it cost."""
    before = result["int8"]
    log.info("export %s: int8 loses %.4f on test; trying a repair (worst layer: %s, RMSE/scale "
             "%.2f)", name, before["drop"], before["worst_layer"]["layer"],
             before["worst_layer"]["rmse_scale"])

    def accurate(content: bytes) -> bool:
        return keras_val - accuracy(val.y, _lite(content).predict_classes(val.x)) <= cfg.max_drop

    change, content, tried = qdebug.repair(debug, accurate, int16)
    change = change or {}
    record = {"float_layers": change.get("float_layers"), "activations": change.get("activations",
                                                                                    "int8"),
              "tried": tried,
              "unrepaired": {k: before[k] for k in ("size_bytes", "accuracy", "drop", "latency")}}
    if content is None:
        log.warning("export %s: no repair within %d tries brings int8 within %.3f on validation",
                    name, len(tried), cfg.max_drop)
        return record
    files["int8"] = content
    measured, logits["int8"] = _measure(content, test, cfg, result["keras_accuracy"],
                                        f"{name} int8 (repaired)")
    measured.update(calibration.ece_record(logits["int8"], test.y, result["temperature"]))
    keep = {k: before[k] for k in ("layers", "worst_layer")}
    result["int8"] = {**measured, **keep}
    record.update(size_cost_bytes=measured["size_bytes"] - before["size_bytes"],
                  latency_cost_ms={k: measured["latency"][k] - before["latency"][k]
                                   for k in measured["latency"]})
    log.info("export %s: int8 repaired with %s: accuracy %.4f -> %.4f, %+d bytes", name,
             change_text(record), before["accuracy"], measured["accuracy"],
             record["size_cost_bytes"])
    return record


def disagreement(float_logits: np.ndarray, int8_logits: np.ndarray, y: np.ndarray,
                 shown: int = 24) -> dict:
    """Step 5. The test images where the float32 and int8 files predict different classes:
    how many, who is right, and the float model's margin (top-1 minus top-2 probability) there
    against everywhere: quantization flips the images the float model was unsure about. The
    `images` listed (at most `shown`) are those with the smallest float margin."""
    p = calibration.softmax(float_logits)
    top2 = np.sort(p, axis=-1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    f, q = np.argmax(float_logits, axis=-1), np.argmax(int8_logits, axis=-1)
    differ = np.flatnonzero(f != q)
    shown_idx = differ[np.argsort(margin[differ], kind="stable")][:shown]
    return {"count": int(len(differ)), "fraction": float(len(differ) / len(y)),
            "float_right": int(np.sum(f[differ] == y[differ])),
            "int8_right": int(np.sum(q[differ] == y[differ])),
            "median_float_margin": float(np.median(margin[differ])) if len(differ) else None,
            "median_float_margin_all": float(np.median(margin)),
            "images": [{"index": int(i), "label": int(y[i]), "float": int(f[i]),
                        "int8": int(q[i]), "float_margin": round(float(margin[i]), 4)}
                       for i in shown_idx]}


def _latency(content: bytes, img: np.ndarray, cfg: ExportConfig,
             runtime=convert.LiteModel) -> dict[str, float]:
    latency = {}
    for threads in cfg.latency_threads:
        timed = runtime(content, num_threads=threads)
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
    """The parity gate: one line per variant (ONNX too) that lost more than `max_drop` of
    `metric`."""
    variants = [v for v in (*convert.VARIANTS, ONNX) if v in result]
    return [f"{variant} {metric} {result[variant][metric]:.4f} is "
            f"{result[variant]['drop']:.4f} below the Keras model's "
            f"{result[f'keras_{metric}']:.4f} (export.max_drop={max_drop})"
            for variant in variants if result[variant]["drop"] > max_drop]
