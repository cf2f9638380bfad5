"""TFLite export (float32 and full-integer int8) and evaluation through the LiteRT interpreter.

Models are converted from a fixed batch-1 signature (a dynamic batch adds SHAPE/STRIDED_SLICE
ops) with built-in ops only, then run by `ai_edge_litert` as they would on a phone.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tqdm import tqdm

from cnnzoo.logs import native_output

log = logging.getLogger(__name__)

VARIANTS = ("float32", "int8")


def convert(model: keras.Model, variant: str, representative: np.ndarray | None = None) -> bytes:
    """`variant`: "float32", or "int8" (weights and activations; needs `representative` images
    as float32 in the model's input range)."""
    return convert_all(model, [variant], representative)[variant]


def convert_all(model: keras.Model, variants: Sequence[str],
                representative: np.ndarray | None = None) -> dict[str, bytes]:
    """Every variant from one SavedModel: writing it (tracing the model) costs about as much as
    both conversions (GoogLeNet on a 2-core CPU: 6.5 s to write, 3.5 s + 3.9 s to convert)."""
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name="image")
    # Via a SavedModel: converting a concrete function directly leaves Keras 3 variables as
    # unresolved READ_VARIABLE resources instead of constants.
    files = {}
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", input_signature=[spec], verbose=False)
        for variant in variants:
            converter = tf.lite.TFLiteConverter.from_saved_model(saved)
            _configure(converter, variant, representative)
            with native_output(f"TFLite converter ({variant})"):
                files[variant] = converter.convert()
    return files


def _configure(converter: tf.lite.TFLiteConverter, variant: str,
               representative: np.ndarray | None) -> None:
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "int8":
        if representative is None or not len(representative):
            raise ValueError("int8 export needs representative images")

        def samples() -> Iterator[list[np.ndarray]]:
            for img in representative:
                yield [img[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif variant != "float32":
        raise ValueError(f"unknown TFLite variant {variant!r}; known: {', '.join(VARIANTS)}")


class LiteModel:
    """A .tflite flatbuffer behind the LiteRT interpreter, taking float images in [0, 1]."""

    def __init__(self, content: bytes, num_threads: int = 1):
        with native_output("LiteRT interpreter"):  # its "Created XNNPACK delegate" line
            self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]

    def _quantize(self, img: np.ndarray) -> np.ndarray:
        if self.inp["dtype"] == np.float32:
            return img.astype(np.float32)
        scale, zero = self.inp["quantization"]
        info = np.iinfo(self.inp["dtype"])
        return np.clip(np.round(img / scale + zero), info.min, info.max).astype(self.inp["dtype"])

    def logits(self, img: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.inp["index"], self._quantize(img[None]))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.out["index"])[0]
        if self.out["dtype"] != np.float32:  # dequantize (argmax alone would not need it)
            scale, zero = self.out["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out

    def predict_classes(self, x: np.ndarray, desc: str = "") -> np.ndarray:
        return np.array([int(np.argmax(self.logits(img)))
                         for img in tqdm(x, desc=desc, unit="img", disable=None, leave=False)])

    def latency_ms(self, img: np.ndarray, runs: int) -> float:
        """Median single-image latency after a warm-up call."""
        self.logits(img)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.logits(img)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e3)
