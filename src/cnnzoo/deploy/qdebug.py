"""Why an int8 model is worse, per layer, and keeping the layers that hurt in float.

TensorFlow's quantization debugger builds a debug model in which every quantized op runs next
to its float twin, both fed the same (quantized) input, so each layer's error is its own, not
what it inherited. RMSE / scale is that error in units of the output's quantization step:
rounding alone gives 1/sqrt(12) = 0.29; a layer far above ~1 loses information there (its
range is too wide for 256 levels, or its weights round to zero).

Repair keeps layers in float with the debugger's denylist (selective quantization). Keeping an
op float only helps when its input is float as well, so a candidate is the worst layers plus
the layers that feed them; candidates grow (1, 2, 4, ... worst layers) and the first one that
is accurate enough is kept: the smallest change first. RMSE / scale cannot see a layer whose
error is only rounding but which everything after it amplifies: a DenseNet-BC fine-tuned on 5
labels per class lost 1.8 points in int8 with no layer above 0.36 steps, and keeping any of
its worst layers in float did not help, while keeping its first four in float did (the
classic rule: first layers in higher precision). So the network's first 1, 2, 4, ... layers
are candidates too, up to half of them (beyond that a float file is the better deal); all are
tried fewest layers first, and last the whole model with 16-bit activations
(`convert.int16_activations`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from cnnzoo.deploy import convert
from cnnzoo.logs import native_output

# Rounding to a uniform grid alone: RMSE = scale / sqrt(12).
ROUNDING = 1 / np.sqrt(12)


@dataclass(frozen=True)
class LayerError:
    layer: str        # the Keras layer (or the TFLite tensor name when none matches)
    op: str           # the TFLite op computing it
    rmse_scale: float
    tensor: str       # the TFLite tensor name: what the denylist takes

    def record(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class Int8Debug:
    """The quantization debugger on one model's int8 conversion (the exported int8 variant's
    settings and calibration images), run on `debug_images`."""

    def __init__(self, saved: str, representative: np.ndarray, debug_images: np.ndarray, *,
                 per_channel: bool, layer_names: Sequence[str] = ()):
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        convert.configure(converter, convert.CALIBRATED, representative, per_channel)

        def debug_data():
            for img in debug_images:
                yield [img[None].astype(np.float32)]

        with native_output("TFLite quantization debugger"), warnings.catch_warnings():
            # It runs tf.lite.Interpreter, which warns that LiteRT's replaces it: no choice here.
            warnings.simplefilter("ignore", UserWarning)
            self.debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=debug_data,
                debug_options=_options())
            self.debugger.run()
        self.errors = self._errors(layer_names)
        if not self.errors:  # a full-integer conversion quantizes at least its first op
            raise RuntimeError("the quantization debugger found no quantized layer to compare")

    def _errors(self, layer_names: Sequence[str]) -> list[LayerError]:
        """Per verified tensor, in graph order."""
        d = self.debugger
        interp = d._quant_interpreter  # the debugger keeps no public handle on its model
        found = []
        for name, stats in d.layer_statistics.items():
            tensor, _ = d._get_operand_name_and_index(name)  # the denylist's spelling
            idx = d._numeric_verify_op_details[name]["inputs"][0]
            scale = interp._get_tensor_details(idx, subgraph_index=0)[
                "quantization_parameters"]["scales"][0]
            op = interp._get_op_details(d._defining_op[idx])["op_name"]
            found.append(LayerError(layer_label(tensor, layer_names), op,
                                    float(np.sqrt(stats["mean_squared_error"]) / scale), tensor))
        return found

    def worst(self, n: int = 1) -> list[LayerError]:
        return sorted(self.errors, key=lambda e: -e.rmse_scale)[:n]

    def producers(self) -> dict[str, set[str]]:
        """Per verified tensor, the verified tensors its op reads (through unverified ops)."""
        d = self.debugger
        interp = d._quant_interpreter
        ops = {op["index"]: op for op in interp._get_ops_details()}
        defining = d._defining_op
        verified = {d._numeric_verify_op_details[n]["inputs"][0]: d._get_operand_name_and_index(n)[0]
                    for n in d.layer_statistics}
        found: dict[str, set[str]] = {}
        for idx, tensor in verified.items():
            feeds, todo, seen = set(), list(ops[defining[idx]]["inputs"]), set()
            while todo:
                t = int(todo.pop())
                if t < 0 or t in seen or t not in defining:  # constants and the model input
                    continue
                seen.add(t)
                if t in verified:
                    feeds.add(verified[t])
                elif ops[defining[t]]["op_name"] != "NumericVerify":
                    todo.extend(ops[defining[t]]["inputs"])
            found[tensor] = feeds
        return found

    def candidates(self) -> list[list[str]]:
        """Denylists to try, fewest layers first (at a tie, the worst layers' first): the 1,
        2, 4, ... worst layers (by RMSE / scale, only those above rounding) with the layers
        that feed them, and the network's first 1, 2, 4, ... layers, up to half of them. Each
        in graph order, none twice."""
        ranked = [e.tensor for e in self.worst(len(self.errors)) if e.rmse_scale > ROUNDING]
        feeds = self.producers()
        graph = [e.tensor for e in self.errors]
        out: list[list[str]] = []

        def add(keep: set[str]) -> None:
            order = [t for t in graph if t in keep]
            if order not in out:
                out.append(order)

        for k in _doubling(len(ranked)):
            add({t for top in ranked[:k] for t in (top, *feeds.get(top, ()))})
        for k in _doubling(len(graph) // 2):
            add(set(graph[:k]))
        return sorted(out, key=len)  # stable: ties keep the worst layers' candidate first

    def keep_float(self, tensors: Sequence[str]) -> bytes:
        """The int8 model (int8 input and output, like the exported one) with the ops computing
        `tensors` left in float."""
        # Not `debugger.options = ...`: that rebuilds and reloads the debug model, unused here.
        self.debugger._debug_options = _options(list(tensors))
        with native_output("TFLite quantization debugger"):
            return self.debugger.get_nondebug_quantized_model()


def _doubling(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself: [] for n = 0."""
    return sorted({min(2 ** i, n) for i in range(n.bit_length() + 1)} - {0})


def _options(denylist: list[str] | None = None):
    # fully_quantize: int8 input and output, as the exported int8 variant.
    return tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist,
                                                         fully_quantize=True)


def layer_label(tensor: str, layer_names: Sequence[str]) -> str:
    """The Keras layer behind a TFLite tensor name such as
    "functional_1/backbone_1/conv2_1/Relu;...": the innermost path part that names a layer of
    the model (a nested model's layer, not the nested model; Keras adds `_1` suffixes when
    tracing). The model's output tensor is named after the SavedModel's call
    ("StatefulPartitionedCall_1:0"): the last layer."""
    names = set(layer_names)
    for part in reversed(tensor.split(";")[0].split("/")):
        for candidate in (part, re.sub(r"_\d+$", "", part)):
            if candidate in names:
                return candidate
    if tensor.startswith("StatefulPartitionedCall") and layer_names:
        return layer_names[-1]
    return tensor.split(";")[0]


def repair(debug: Int8Debug, accurate: Callable[[bytes], bool],
           int16: Callable[[], bytes] | None = None) -> tuple[dict | None, bytes | None, list[dict]]:
    """The first candidate denylist (`Int8Debug.candidates`) whose model `accurate` accepts,
    then `int16()` (the model with 16-bit activations) when given: (what was changed, the
    model bytes, every try), or (None, None, every try) when nothing passes. What was changed
    is {"float_layers": [...]} or {"activations": "int16"}, as is each try with its "passed"."""
    tried = []
    labels = {e.tensor: e.layer for e in debug.errors}
    attempts: list[tuple[dict, Callable[[], bytes]]] = [
        ({"float_layers": [labels[t] for t in tensors]},
         lambda tensors=tensors: debug.keep_float(tensors)) for tensors in debug.candidates()]
    if int16 is not None:
        attempts.append(({"activations": "int16"}, int16))
    for change, build in attempts:
        content = build()
        ok = bool(accurate(content))
        tried.append({**change, "passed": ok})
        if ok:
            return change, content, tried
    return None, None, tried
