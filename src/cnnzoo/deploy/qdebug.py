"""Why an int8 model is worse, per layer, and keeping the layers that hurt in float.

TensorFlow's quantization debugger builds a debug model in which every quantized op runs next
to its float twin, both fed the same (quantized) input, so each layer's error is its own, not
what it inherited. RMSE / scale is that error in units of the output's quantization step:
rounding alone gives 1/sqrt(12) = 0.29; a layer far above ~1 loses information there (its
range is too wide for 256 levels, or its weights round to zero).

Repair keeps layers in float with the debugger's denylist (selective quantization). Keeping an
op float only helps when its input is float as well, so a candidate is the worst layers plus
the layers that feed them; candidates grow (1, 2, 4, ... worst layers) and the first one that
is accurate enough is kept: the smallest change first.
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
        """Denylists to try, smallest first: the 1, 2, 4, ... worst layers (by RMSE / scale,
        only those above rounding) with the layers that feed them."""
        ranked = [e.tensor for e in self.worst(len(self.errors)) if e.rmse_scale > ROUNDING]
        feeds = self.producers()
        out, k = [], 1
        while ranked and k <= 2 * len(ranked):
            keep = {t for top in ranked[:k] for t in (top, *feeds.get(top, ()))}
            order = [e.tensor for e in self.errors if e.tensor in keep]  # graph order
            if not out or order != out[-1]:
                out.append(order)
            if k >= len(ranked):
                break
            k *= 2
        return out

    def keep_float(self, tensors: Sequence[str]) -> bytes:
        """The int8 model (int8 input and output, like the exported one) with the ops computing
        `tensors` left in float."""
        # Not `debugger.options = ...`: that rebuilds and reloads the debug model, unused here.
        self.debugger._debug_options = _options(list(tensors))
        with native_output("TFLite quantization debugger"):
            return self.debugger.get_nondebug_quantized_model()


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
           ) -> tuple[list[str] | None, bytes | None, list[dict]]:
    """The first candidate denylist (`Int8Debug.candidates`) whose model `accurate` accepts:
    (its layers, the model bytes, every try), or (None, None, every try) when none does."""
    tried = []
    labels = {e.tensor: e.layer for e in debug.errors}
    for tensors in debug.candidates():
        content = debug.keep_float(tensors)
        ok = accurate(content)
        tried.append({"float_layers": [labels[t] for t in tensors], "passed": bool(ok)})
        if ok:
            return [labels[t] for t in tensors], content, tried
    return None, None, tried
