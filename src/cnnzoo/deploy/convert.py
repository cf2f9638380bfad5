"""TFLite export in four variants, and running them through the LiteRT interpreter.

Models are converted from a fixed batch-1 signature (a dynamic batch adds SHAPE/STRIDED_SLICE
ops) with built-in ops only (no Flex/SELECT_TF_OPS), then run by `ai_edge_litert` with its
default XNNPACK delegate, as they would run on a phone's CPU.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tqdm import tqdm

from cnnzoo.logs import native_output

log = logging.getLogger(__name__)

# float32; float16 weights; dynamic-range int8 (int8 weights, float activations); full-integer
# int8 (int8 weights and activations, int8 input and output, calibrated on representative images).
VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
CALIBRATED = "int8"
# Ops that only convert between the float and int8 worlds at the edges of a float island.
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


def convert(model: keras.Model, variant: str, representative: np.ndarray | None = None,
            per_channel: bool = True) -> bytes:
    """One variant of `VARIANTS`; "int8" needs `representative` images as float32 in the
    model's input range."""
    return convert_all(model, [variant], representative, per_channel)[variant]


def convert_all(model: keras.Model, variants: Sequence[str],
                representative: np.ndarray | None = None,
                per_channel: bool = True, saved: str | None = None) -> dict[str, bytes]:
    """Every variant from one SavedModel: writing it (tracing the model) costs about as much as
    two conversions (GoogLeNet on a 2-core CPU: 6.5 s to write, 3.5 s + 3.9 s to convert).
    `saved`: that SavedModel when the caller already wrote one (`saved_model`), else a
    temporary one.

    `per_channel=False` gives the int8 variant one scale per weight tensor instead of one per
    output channel: less accurate in general, but per-channel scales and zero points take 12
    bytes per channel for the weights and again for the biases, a quarter of a 0.35-wide
    MobileNetV2's int8 file.
    """
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown TFLite variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    if saved is None:
        with saved_model(model) as tmp:
            return convert_all(model, variants, representative, per_channel, saved=tmp)
    files = {}
    # One converter for all variants: creating one loads the SavedModel (~1 s for GoogLeNet);
    # `configure` resets what the previous variant set (the bytes are those of a fresh one).
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    for variant in variants:
        configure(converter, variant, representative, per_channel)
        with native_output(f"TFLite converter ({variant})"):
            files[variant] = converter.convert()
    return files


def int16_activations(saved: str, representative: np.ndarray, per_channel: bool) -> bytes:
    """The int8 variant with 16-bit activations (`configure`'s `int16_activations`)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    configure(converter, CALIBRATED, representative, per_channel, int16_activations=True)
    absl = logging.getLogger("absl")
    level = absl.level
    # TF 2.21 warns that "inference_input_type will default to the original type" for every
    # 16x8 conversion, although the input it writes is int16 (tests/test_qdebug.py checks).
    absl.setLevel(logging.ERROR)
    try:
        with native_output("TFLite converter (int8, int16 activations)"):
            return converter.convert()
    finally:
        absl.setLevel(level)


@contextmanager
def saved_model(model: keras.Model) -> Iterator[str]:
    """A temporary SavedModel of `model` with a fixed batch-1 signature, what every converter
    here starts from."""
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name="image")
    # Via a SavedModel: converting a concrete function directly leaves Keras 3 variables as
    # unresolved READ_VARIABLE resources instead of constants.
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", input_signature=[spec], verbose=False)
        yield saved


def configure(converter: tf.lite.TFLiteConverter, variant: str,
               representative: np.ndarray | None, per_channel: bool,
               int16_activations: bool = False) -> None:
    """Sets `converter` up for `variant`, undoing what an earlier variant set.
    `int16_activations`: "int8" with 16-bit activations and int16 input and output (LiteRT's
    16x8 mode, int8 weights): the export's last repair, at a latency cost (reference kernels,
    no XNNPACK)."""
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.target_spec.supported_types = set()
    converter.optimizations = []
    converter.representative_dataset = None
    converter.inference_input_type = converter.inference_output_type = tf.float32
    converter._experimental_disable_per_channel = False  # the converter's default
    if variant == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if representative is None or not len(representative):
            raise ValueError("int8 export needs representative images")

        def samples() -> Iterator[list[np.ndarray]]:
            for img in representative:
                yield [img[None].astype(np.float32)]

        converter.representative_dataset = samples
        # Ops without an int8 kernel (e.g. AlexNet's LRN) stay float between QUANTIZE and
        # DEQUANTIZE; `float_ops` lists them.
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            if int16_activations else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = (
            tf.int16 if int16_activations else tf.int8)
        # The converter's only switch for it (TF 2.21); per-channel is its default.
        converter._experimental_disable_per_channel = not per_channel
    # dynamic_int8: Optimize.DEFAULT without a representative dataset quantizes weights only.


def float_ops(content: bytes) -> dict[str, int]:
    """Ops of a model that compute in float (any float32 input or output), by op name, without
    the QUANTIZE/DEQUANTIZE ops around them: empty for an integer-only model."""
    with native_output("LiteRT interpreter"):
        # Without the default delegate, so the model's own ops are listed, not DELEGATE nodes.
        interp = Interpreter(model_content=content, experimental_op_resolver_type=
                             OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    found: Counter[str] = Counter()
    for op in interp._get_ops_details():  # the interpreter's only per-op listing
        tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if op["op_name"] not in _BOUNDARY_OPS and any(dtypes[i] == np.float32 for i in tensors):
            found[op["op_name"]] += 1
    return dict(sorted(found.items()))


class LiteModel:
    """A .tflite flatbuffer behind the LiteRT interpreter, taking float images in [0, 1]."""

    def __init__(self, content: bytes, num_threads: int = 1):
        self.content, self.num_threads = content, num_threads
        with native_output("LiteRT interpreter"):  # its "Created XNNPACK delegate" line
            self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.inp["shape"][1:])

    def _quantize(self, img: np.ndarray) -> np.ndarray:
        if self.inp["dtype"] == np.float32:
            return img.astype(np.float32)
        scale, zero = self.inp["quantization"]
        info = np.iinfo(self.inp["dtype"])
        return np.clip(np.round(img / scale + zero), info.min, info.max).astype(self.inp["dtype"])

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.inp["index"], self._quantize(batch))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.out["index"])
        if self.out["dtype"] != np.float32:  # dequantize (argmax alone would not need it)
            scale, zero = self.out["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out

    def logits(self, img: np.ndarray) -> np.ndarray:
        return self._invoke(img[None])[0]

    def predict_logits(self, x: np.ndarray, desc: str = "", batch_size: int = 250) -> np.ndarray:
        """Logits of many images. The same file with its batch dimension resized to
        `batch_size` when that gives what batch 1 gives on the first images (2-3x faster:
        GoogLeNet, 5000 images, 2 threads: 0.65 s vs 1.5 s), else one image at a time."""
        if len(x) > batch_size:
            batched = self._batched(batch_size, x[:8])
            if batched is not None:
                return batched.run_batched(x, batch_size, desc)
        return np.stack([self.logits(img)
                         for img in tqdm(x, desc=desc, unit="img", disable=None, leave=False)])

    def _batched(self, batch_size: int, probe: np.ndarray) -> LiteModel | None:
        other = LiteModel(self.content, self.num_threads)
        try:
            other.interpreter.resize_tensor_input(other.inp["index"], [batch_size, *self.input_shape])
            other.interpreter.allocate_tensors()
        except (ValueError, RuntimeError):  # a shape fixed inside the graph
            return None
        other.inp = other.interpreter.get_input_details()[0]
        other.out = other.interpreter.get_output_details()[0]
        one = np.stack([self.logits(img) for img in probe])
        padded = np.concatenate([probe, np.zeros((batch_size - len(probe), *probe.shape[1:]),
                                                 probe.dtype)])
        many = other._invoke(padded)[: len(probe)]
        # Two int8 steps, or float rounding (batched kernels sum in another order).
        tolerance = 2 * self.out["quantization"][0] or 1e-4 * max(1.0, np.abs(one).max())
        if many.shape != one.shape or np.abs(many - one).max() > tolerance:
            return None
        return other

    def run_batched(self, x: np.ndarray, batch_size: int, desc: str) -> np.ndarray:
        out = []
        for start in tqdm(range(0, len(x), batch_size), desc=desc, unit="batch", disable=None,
                          leave=False):
            chunk = x[start:start + batch_size]
            pad = batch_size - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            out.append(self._invoke(chunk)[: batch_size - pad])
        return np.concatenate(out)

    def predict_classes(self, x: np.ndarray, desc: str = "") -> np.ndarray:
        return np.argmax(self.predict_logits(x, desc), axis=-1)

    def latency(self, img: np.ndarray, runs: int = 100, warmup: int = 10) -> dict[str, float]:
        """Batch-1 `invoke()` time in ms (input set once, the warm-up calls not timed): median
        and 90th percentile over `runs` calls."""
        self.interpreter.set_tensor(self.inp["index"], self._quantize(img[None]))
        for _ in range(warmup):
            self.interpreter.invoke()
        times = np.empty(runs)
        for i in range(runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            times[i] = time.perf_counter() - start
        return {"median_ms": float(np.median(times) * 1e3),
                "p90_ms": float(np.percentile(times, 90) * 1e3)}
