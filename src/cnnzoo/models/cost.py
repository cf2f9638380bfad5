"""Cost of a network: per-layer output shape, parameters and multiply-accumulates (MACs).

Convolution output size: ⌊(n + 2p − f)/s⌋ + 1. A convolution costs one MAC per weight per output
position: H_out·W_out·C_out·(f_h·f_w·C_in/groups); a depthwise one H_out·W_out·C_in·m·f_h·f_w; a
dense layer in·out. Bias additions, BatchNorm, activations and pooling are not counted (the
convention of the papers' "mult-adds").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int


def conv_output_size(n: int, f: int, s: int = 1, p: int = 0) -> int:
    """⌊(n + 2p − f)/s⌋ + 1."""
    if n + 2 * p < f:
        raise ValueError(f"a {f}-wide filter does not fit an input of {n} with padding {p}")
    return (n + 2 * p - f) // s + 1


def conv_macs(out_hw: tuple[int, int], kernel: tuple[int, int], c_in: int, c_out: int,
              groups: int = 1) -> int:
    return out_hw[0] * out_hw[1] * c_out * kernel[0] * kernel[1] * (c_in // groups)


def depthwise_macs(out_hw: tuple[int, int], kernel: tuple[int, int], c_in: int,
                   multiplier: int = 1) -> int:
    return out_hw[0] * out_hw[1] * c_in * multiplier * kernel[0] * kernel[1]


def _shape(t) -> tuple:
    return tuple(t.shape)


def layer_macs(layer: keras.Layer) -> int:
    # Depthwise and separable subclass Conv in Keras 3, so test them first.
    if isinstance(layer, layers.DepthwiseConv2D):
        out = _shape(layer.output)
        return depthwise_macs(out[1:3], layer.kernel_size, _shape(layer.input)[-1],
                              layer.depth_multiplier)
    if isinstance(layer, layers.SeparableConv2D):
        out, c_in = _shape(layer.output), _shape(layer.input)[-1]
        return (depthwise_macs(out[1:3], layer.kernel_size, c_in, layer.depth_multiplier)
                + out[1] * out[2] * c_in * layer.depth_multiplier * out[-1])
    if isinstance(layer, layers.Conv2DTranspose):
        inp = _shape(layer.input)
        return inp[1] * inp[2] * inp[3] * layer.kernel_size[0] * layer.kernel_size[1] * layer.filters
    if isinstance(layer, layers.Conv2D):
        out = _shape(layer.output)
        return conv_macs(out[1:3], layer.kernel_size, _shape(layer.input)[-1], out[-1],
                         layer.groups)
    if isinstance(layer, layers.Dense):
        inp = _shape(layer.input)
        return math.prod(d for d in inp[1:-1] if d) * inp[-1] * layer.units
    return 0


def model_cost(model: keras.Model) -> list[LayerCost]:
    """Per-layer costs, descending into nested models (e.g. a transfer model's backbone)."""
    rows = []
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            rows.extend(model_cost(layer))
            continue
        params = sum(math.prod(w.shape) for w in layer.weights)
        rows.append(LayerCost(layer.name, type(layer).__name__, _shape(layer.output)[1:],
                              int(params), int(layer_macs(layer))))
    return rows


def total_macs(model: keras.Model) -> int:
    return sum(r.macs for r in model_cost(model))


def format_table(rows: list[LayerCost]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"{'layer':<{width}}  {'type':<22} {'output':<18} {'params':>12} {'MACs':>16}"]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {r.kind:<22} {str(r.output_shape):<18} "
                     f"{r.params:>12,} {r.macs:>16,}")
    lines.append(f"{'total':<{width}}  {'':<22} {'':<18} {sum(r.params for r in rows):>12,} "
                 f"{sum(r.macs for r in rows):>16,}")
    return "\n".join(lines)


def zoo_table(names: list[str], shape: tuple[int, ...], num_classes: int) -> str:
    """`cnnzoo models`: each model's family, parameters and MACs per image at `shape`."""
    from cnnzoo.models import create_model, get_entry

    width = max(len(n) for n in names)
    lines = [f"{'model':<{width}}  {'family':<10} {'params':>14} {'MACs':>16}   "
             f"(input {shape}, {num_classes} classes)"]
    for name in names:
        family = get_entry(name).family
        try:
            rows = model_cost(create_model(name, input_shape=shape, num_classes=num_classes))
        except ValueError as err:  # e.g. an input too small for the network
            lines.append(f"{name:<{width}}  {family:<10} {'n/a':>14} {'n/a':>16}   {err}")
            continue
        params, macs = sum(r.params for r in rows), sum(r.macs for r in rows)
        lines.append(f"{name:<{width}}  {family:<10} {params:>14,} {macs:>16,}")
    return "\n".join(lines)
