"""Shipping the fine-tuned models: evaluate on task B's test split, export TFLite (the report
that ranks them is stages/report.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cnnzoo.config import Params
from cnnzoo.data.serving_input import to_unit
from cnnzoo.files import read_json, write_json
from cnnzoo.reporting.quantization import change_text, repaired
from cnnzoo.stages.common import data_record, experiment_tags, log_data
from cnnzoo.stages.exporting import write_export
from cnnzoo.tracking.client import stage_run

log = logging.getLogger(__name__)


def evaluate(params: Params, *, arch: str, prepared: str, model: str, metrics: str,
             confusion: str, reliability: str) -> None:
    """Test accuracy, the confusion matrix, and calibration: the temperature fitted on the
    validation split (the export stage writes it into model.json) and the test ECE before and
    after it, with a reliability diagram."""
    import keras

    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.models.cost import total_macs
    from cnnzoo.reporting.figures import confusion_matrix_plot
    from cnnzoo.tasks.classification import classification_metrics, count_params, predict_logits
    from cnnzoo.tasks.intervals import accuracy_record

    names = load_meta(prepared)["task_b"]["names"]
    x, y = load_split(prepared, "b_test")
    x_val, y_val = load_split(prepared, "b_val")
    with stage_run("evaluate", arch, experiment=params.base.experiment,
                   params={"arch": arch, "test_images": len(y)},
                   tags=experiment_tags(params)) as run:  # the run spans the work it records
        log_data(run, params, x, y, "task B", "test")
        net = keras.models.load_model(model)
        logits = predict_logits(net, np.concatenate([x, x_val]))
        logits, val_logits = logits[:len(y)], logits[len(y):]
        predicted = np.argmax(logits, axis=-1)
        result, cm = classification_metrics(y, predicted, names)
        result.update(accuracy_record(predicted == y, "accuracy"))
        result.update(_calibrate(logits, y, val_logits, y_val, reliability, arch))
        result.update(count_params(net), macs=total_macs(net),
                      model_bytes=Path(model).stat().st_size, test_images=len(y),
                      data=data_record(prepared))
        write_json(metrics, result)
        confusion_matrix_plot(cm, names, confusion,
                              title=f"{arch}: task B test, accuracy {result['accuracy']:.3f}")
        run.log_metrics(result)
        run.log_artifact(confusion)
        run.log_artifact(reliability)
    log.info("evaluate %s: test accuracy %.4f (95%% CI %.4f-%.4f) on %d images; ECE %.4f -> %.4f "
             "at T = %.2f", arch, result["accuracy"], *result["accuracy_ci"], len(y),
             result["ece"], result["ece_scaled"], result["temperature"])


def _calibrate(logits: np.ndarray, y: np.ndarray, val_logits: np.ndarray, y_val: np.ndarray,
               path: str, arch: str) -> dict:
    """The temperature (fitted on validation), test ECE before / after, reliability diagram."""
    from cnnzoo.reporting.figures import reliability_plot
    from cnnzoo.tasks import calibration

    t = calibration.fit_temperature(val_logits, y_val)
    result = {"temperature": t, **calibration.ece_record(logits, y, t)}
    reliability_plot({"softmax": (result["ece"], calibration.reliability(
                          calibration.softmax(logits), y)),
                      f"softmax(logits / {t:.2f})": (result["ece_scaled"], calibration.reliability(
                          calibration.softmax(logits, t), y))},
                     path, f"{arch}: task B test, {calibration.BINS} confidence bins; "
                           "T fitted on validation")
    return result


def export(params: Params, *, arch: str, prepared: str, model: str, out: str, metrics: str,
           disagreement: str, evaluated: str | None = None) -> None:
    """Four TFLite variants + labels.txt + model.json in `out`, measured (`cnnzoo.deploy.parity`) and
    gated: a variant more than `export.max_drop` below the Keras model fails the stage, after
    its numbers are logged, and writes no output. `disagreement`: a PNG of the test images where
    float32 and int8 disagree. `evaluated`: the evaluate stage's metrics of the same model,
    whose test accuracy is the Keras reference when it covers the same images."""
    import keras

    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.deploy import parity

    cfg = params.export
    meta = load_meta(prepared)
    names = meta["task_b"]["names"]

    def split(name: str, limit: int = 0) -> parity.Split:
        x, y = load_split(prepared, name)
        if limit:
            x, y = x[:limit], y[:limit]
        return parity.Split(to_unit(x), y)

    test, val = split("b_test", cfg.eval_limit), split("b_val")
    # Calibrate int8 ranges on target-task training images (never on the test split).
    x_rep = split("b_train", cfg.representative_samples).x
    reference = read_json(evaluated) if evaluated else {}
    known = reference.get("accuracy") if reference.get("test_images") == len(test.y) else None
    with stage_run("export", arch, experiment=params.base.experiment,
                   params={"export": cfg.model_dump()}, tags=experiment_tags(params)) as run:
        log_data(run, params, test.x, test.y, "task B", "test")
        net = keras.models.load_model(model)
        files, result = parity.convert_and_measure(net, cfg, x_rep=x_rep, val=val, test=test,
                                                   name=arch, keras_accuracy=known,
                                                   temperature=reference.get("temperature"))
        failures = parity.gate_failures(result, cfg.max_drop)
        run.log_metrics(_flat_metrics(result))
        _disagreement_figure(result["disagreement"], test.x, names, disagreement, arch)
        run.log_artifact(disagreement)
        if failures and cfg.enforce_gate:
            raise RuntimeError(f"{arch}: TFLite parity gate failed: " + "; ".join(failures))
        if failures:  # export.enforce_gate: false (`make sweep`): recorded, not shipped as good
            log.warning("%s: parity gate failed, written anyway (export.enforce_gate is false): "
                        "%s", arch, "; ".join(failures))
        result["gate_failures"] = failures
        # No MLflow run ids in what DVC hashes: the same model must give the same bytes.
        card = model_card(arch, meta, params, result, files, images=test.x)
        write_export(out, files, card, run, labels=names)
        write_json(metrics, result)
    worst, repair = result["int8"]["worst_layer"], result["int8"]["repair"]
    log.info("export %s: %d files%s within %.3f of Keras %.4f; int8 %.1fx smaller (%s scales)%s; "
             "worst int8 layer %s (RMSE/scale %.2f); float32 and int8 disagree on %d images",
             arch, len(files), f" ({len(failures)} not)" if failures else "", cfg.max_drop,
             result["keras_accuracy"], result["int8_size_ratio"],
             result["int8_scales"].replace("_", "-"),
             f", repaired with {change_text(repair)}" if repaired(repair) else "",
             worst["layer"], worst["rmse_scale"], result["disagreement"]["count"])


def _disagreement_figure(found: dict, x: np.ndarray, names: list[str], path: str,
                         arch: str) -> None:
    from cnnzoo.reporting.figures import image_grid

    shown = found["images"]
    image_grid(x[[d["index"] for d in shown]],
               [f"{names[d['label']]}\nfp32 {names[d['float']]}\nint8 {names[d['int8']]}"
                f"\nmargin {d['float_margin']:.2f}" for d in shown], path,
               f"{arch}: float32 and int8 disagree on {found['count']} of {len(x)} test images\n"
               f"(label, each file's class, float32's top-2 margin; the {len(shown)} smallest "
               "margins)")


def _flat_metrics(result: dict) -> dict[str, float]:
    from cnnzoo.deploy.convert import VARIANTS
    from cnnzoo.deploy.parity import ONNX

    measured = [v for v in (*VARIANTS, ONNX) if v in result]
    flat = {f"{v}_{k}": result[v][k] for v in measured
            for k in ("size_bytes", "accuracy", "drop", "ece", "ece_scaled")}
    flat.update({f"{v}_latency_{k}": ms for v in measured for k, ms in result[v]["latency"].items()})
    int8 = result["int8"]
    flat.update(keras_accuracy=result["keras_accuracy"], int8_size_ratio=result["int8_size_ratio"],
                int8_float_ops=sum(int8["float_ops"].values()),
                int8_worst_rmse_scale=int8["worst_layer"]["rmse_scale"],
                int8_repaired_layers=len((int8["repair"] or {}).get("float_layers") or []),
                int8_int16_activations=float(repaired(int8["repair"]) and
                                             int8["repair"]["activations"] == "int16"),
                int8_disagreements=result["disagreement"]["count"])
    for e in int8["layers"]:  # a layer may own several tensors: its worst
        key = f"int8_rmse_scale/{e['layer']}"
        flat[key] = max(flat.get(key, 0.0), e["rmse_scale"])
    return flat


def model_card(arch: str, meta: dict, params: Params, result: dict,
               files: dict[str, bytes], images: np.ndarray | None = None) -> dict:
    """model.json: what an app needs to feed the .tflite files (and `cnnzoo predict` reads).
    Only what the files depend on: the MLflow run and the git commit are the run's tags."""
    from cnnzoo.data.serving_input import border_brightness
    from cnnzoo.deploy.convert import LiteModel
    from cnnzoo.deploy.onnx_runtime import OPSET
    from cnnzoo.deploy.parity import ONNX

    shape = meta["image_shape"]
    variants = {}
    for variant, content in files.items():
        if variant == ONNX:
            continue
        inp = LiteModel(content).inp
        scale, zero = inp["quantization"]
        variants[variant] = {"file": f"{arch}_{variant}.tflite",
                             "input_dtype": np.dtype(inp["dtype"]).name,
                             **({"input_scale": float(scale), "input_zero_point": int(zero)}
                                if scale else {}),
                             **{k: result[variant][k] for k in ("size_bytes", "accuracy")}}
    repair = result["int8"].get("repair")
    if repaired(repair):  # what differs from a plain int8 conversion
        variants["int8"].update({"float_layers": repair["float_layers"]} if repair["float_layers"]
                                else {"activations": repair["activations"]})
    return {
        "arch": arch,
        "task": "classification",
        "classes": meta["task_b"]["names"],
        "input": {
            "shape": shape, "dtype": "float32", "range": [0.0, 1.0],
            "normalisation": "pixel / 255, no mean or std",
            "colour": "grey" if shape[-1] == 1 else "rgb",
            # How training images were brought to `shape`: resized to source_size, then
            # zero-padded (fit: pad) or resized (fit: resize) to `shape`.
            "fit": params.data.fit,
            "source_size": meta.get("source_image_shape", shape)[:2],
            # The data's median border brightness in [0, 1] (measured on `images`, the test
            # split): `cnnzoo predict` warns on images of the opposite polarity.
            **({"background": round(float(np.median(border_brightness(images))), 3)}
               if images is not None else {}),
            # Variants with an input_scale take integers (their input_dtype: int8, or int16 after
            # an int16-activation repair): q = round(x / scale) + zero_point.
        },
        "output": "logits (softmax(logits / temperature) gives probabilities)",
        # Fitted on the validation split (evaluate stage): calibrated probabilities, same argmax.
        "temperature": float(result["temperature"]),
        "variants": variants,
        # The same network for onnxruntime: float32 input as above, dynamic batch.
        **({ONNX: {"file": f"{arch}.onnx", "input": "image", "opset": OPSET,
                   **{k: result[ONNX][k] for k in ("size_bytes", "accuracy")}}}
           if ONNX in files else {}),
        "keras_accuracy": result["keras_accuracy"],
        "test_images": result["test_images"],
    }
