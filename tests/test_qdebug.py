"""Quantization debugging and selective repair: a model built to fail the int8 parity gate
(one layer's output channel 10,000x wider than the rest, undone by the next layer's weights, so
the float model is unchanged) is debugged, repaired, and passes the gate; the disagreement
between float32 and int8 is counted."""

import numpy as np
import pytest

from cnnzoo.config import ExportConfig
from cnnzoo.deploy import convert, parity, qdebug


@pytest.fixture(scope="module")
def data():
    """Four classes: which quadrant of an 8x8 noise image is brightest."""
    rng = np.random.default_rng(0)
    x = rng.random((768, 8, 8, 1)).astype(np.float32)
    quadrants = [x[:, :4, :4], x[:, :4, 4:], x[:, 4:, :4], x[:, 4:, 4:]]
    y = np.argmax(np.stack([q.mean(axis=(1, 2, 3)) for q in quadrants], 1), axis=1)
    return x, y


def _build(data, wide: bool):
    import keras

    x, y = data
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(inp)
    h = keras.layers.Conv2D(8, 1, name="b")(h)
    h = keras.layers.Conv2D(8, 1, activation="relu", name="c")(h)
    out = keras.layers.Dense(4, name="d")(keras.layers.Flatten()(h))
    net = keras.Model(inp, out)
    net.compile(optimizer=keras.optimizers.Adam(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x[:512], y[:512], epochs=40, batch_size=64, verbose=0)
    if wide:
        # b's channel 0 x 1e4 and c's weights on it / 1e4: the same function in float, but one
        # int8 scale for b's output now spans 1e4x the range of its other channels.
        wb, bb = net.get_layer("b").get_weights()
        wb[..., 0] *= 1e4
        bb[0] *= 1e4
        net.get_layer("b").set_weights([wb, bb])
        wc, bc = net.get_layer("c").get_weights()
        wc[:, :, 0, :] /= 1e4
        net.get_layer("c").set_weights([wc, bc])
    return net


@pytest.fixture(scope="module")
def wide(data):
    return _build(data, wide=True)


def _cfg(**kw):
    return ExportConfig(latency_runs=3, latency_threads=[1], int8_scales="per_channel", **kw)


def _splits(data):
    x, y = data
    return x[:256], parity.Split(x[512:640], y[512:640]), parity.Split(x[640:], y[640:])


def test_debugger_names_the_layer_that_breaks(wide, data):
    x_rep, _, _ = _splits(data)
    with convert.saved_model(wide) as saved:
        debug = qdebug.Int8Debug(saved, x_rep, x_rep[:16], per_channel=True,
                                 layer_names=[layer.name for layer in wide.layers])
    by_layer = {e.layer: e for e in debug.errors}
    assert {"a", "b", "c", "d"} <= set(by_layer)
    # c's weights on the wide channel round to zero: its error is many quantization steps;
    # healthy layers stay near rounding alone (1/sqrt(12) = 0.29 steps).
    assert debug.worst()[0].layer == "c"
    assert by_layer["c"].rmse_scale > 3  # > 10x rounding
    assert by_layer["a"].rmse_scale < 1 and by_layer["d"].rmse_scale < 1
    assert by_layer["c"].op == "CONV_2D"
    # c alone in float would still read b's crushed int8 output: b comes with it.
    assert [by_layer["b"].tensor, by_layer["c"].tensor] in debug.candidates()
    assert [by_layer["c"].tensor] not in debug.candidates()


def test_candidates_include_the_networks_first_layers_fewest_first(wide, data):
    """Beside the worst layers (with their producers): the first 1, 2, 4, ... layers in
    graph order, up to half of them; none twice, fewest layers first."""
    x_rep, _, _ = _splits(data)
    with convert.saved_model(wide) as saved:
        debug = qdebug.Int8Debug(saved, x_rep, x_rep[:16], per_channel=True,
                                 layer_names=[layer.name for layer in wide.layers])
    graph = [e.tensor for e in debug.errors]
    found = debug.candidates()
    assert len(found) == len({tuple(c) for c in found})
    first = [graph[:k] for k in (1, 2, 4, 8, 16) if k <= len(graph) // 2]
    assert first and all(c in found for c in first)
    assert [len(c) for c in found] == sorted(len(c) for c in found)
    by_layer = {e.layer: e.tensor for e in debug.errors}
    assert [by_layer["b"], by_layer["c"]] in found  # the worst layer c with its producer b
    assert qdebug._doubling(0) == [] and qdebug._doubling(5) == [1, 2, 4, 5]


def test_int16_activations_are_the_last_repair(data):
    """When no float-layer candidate is accepted, the whole model with 16-bit activations is
    tried last. On a healthy model that file keeps Keras' accuracy, with int16 input and
    output and no float op."""
    net = _build(data, wide=False)
    x_rep, val, test = _splits(data)
    with convert.saved_model(net) as saved:
        debug = qdebug.Int8Debug(saved, x_rep, x_rep[:16], per_channel=True,
                                 layer_names=[layer.name for layer in net.layers])
        change, content, tried = qdebug.repair(
            debug, lambda b: convert.LiteModel(b).inp["dtype"] == np.int16,
            int16=lambda: convert.int16_activations(saved, x_rep, per_channel=True))
    assert change == {"activations": "int16"}
    assert tried[-1] == {"activations": "int16", "passed": True}
    assert len(tried) == len(debug.candidates()) + 1
    assert all(t["float_layers"] and not t["passed"] for t in tried[:-1])
    lite = convert.LiteModel(content)
    assert lite.inp["dtype"] == lite.out["dtype"] == np.int16
    assert convert.float_ops(content) == {}
    keras_acc = parity.accuracy(test.y, parity.keras_classes(net, test.x))
    assert abs(parity.accuracy(test.y, lite.predict_classes(test.x)) - keras_acc) <= 0.01
    # Nothing accepted and no int16 step: nothing changed.
    assert qdebug.repair(debug, lambda b: False)[:2] == (None, None)


def test_repair_is_described_in_words():
    from cnnzoo.reporting.quantization import _repair_text, change_text, repaired

    tried = [{"float_layers": ["a"], "passed": False}, {"activations": "int16", "passed": True}]
    int16 = {"float_layers": None, "activations": "int16", "tried": tried,
             "unrepaired": {"accuracy": 0.7932}, "size_cost_bytes": 5616,
             "latency_cost_ms": {"1t_median_ms": 0.52, "2t_median_ms": 0.4}}
    assert change_text(int16) == "int16 activations"
    assert _repair_text(int16).startswith("int16 activations: acc 0.7932 → within the gate, +5.5 KB")
    assert change_text({**int16, "float_layers": ["a", "b"], "activations": "int8"}) == "a, b in float"
    assert change_text({**int16, "activations": "int8"}) == "failed after 2 tries"
    assert change_text(None) == "not needed"
    assert repaired(int16) and not repaired({**int16, "activations": "int8"})
    assert not repaired(None)


def test_failing_int8_is_repaired_and_named(wide, data):
    x_rep, val, test = _splits(data)
    files, result = parity.convert_and_measure(wide, _cfg(), x_rep=x_rep, val=val, test=test,
                                               name="wide")
    repair = result["int8"]["repair"]
    assert repair is not None, "the plain int8 model should have failed the gate"
    before = repair["unrepaired"]
    assert before["drop"] > 0.3  # the collapse the repair starts from
    assert repair["float_layers"] == ["b", "c"] and repair["activations"] == "int8"
    # Fewest layers first: the network's first layer alone (not the broken one) fails.
    assert repair["tried"] == [{"float_layers": ["a"], "passed": False},
                               {"float_layers": ["b", "c"], "passed": True}]
    # The repaired model passes the same strict gate, and is what gets written.
    assert parity.gate_failures(result, 0.01) == []
    assert result["int8"]["drop"] <= 0.01
    assert result["int8"]["size_bytes"] == len(files["int8"])
    assert repair["size_cost_bytes"] == len(files["int8"]) - before["size_bytes"] > 0
    assert set(repair["latency_cost_ms"]) == set(result["int8"]["latency"])
    lite = convert.LiteModel(files["int8"])
    assert lite.inp["dtype"] == np.int8  # the same interface as any int8 export
    assert result["int8"]["float_ops"] == {"CONV_2D": 2}
    assert result["int8"]["worst_layer"]["layer"] == "c"


def test_no_repair_when_disabled_and_the_gate_fails(wide, data):
    x_rep, val, test = _splits(data)
    _, result = parity.convert_and_measure(wide, _cfg(repair=False), x_rep=x_rep, val=val,
                                           test=test, name="wide")
    assert result["int8"]["repair"] is None
    assert [f.split()[0] for f in parity.gate_failures(result, 0.01)] == ["int8"]


def test_healthy_model_needs_no_repair(data):
    net = _build(data, wide=False)
    x_rep, val, test = _splits(data)
    _, result = parity.convert_and_measure(net, _cfg(), x_rep=x_rep, val=val, test=test,
                                           name="plain")
    assert result["int8"]["repair"] is None
    assert all(e["rmse_scale"] < 2 for e in result["int8"]["layers"])


def test_disagreement_counts_and_orders_by_margin():
    y = np.array([0, 1, 2, 0])
    f = np.array([[5.0, 0, 0], [0, 0.1, 0], [0, 0, 3], [1, 0.95, 0]])
    q = np.array([[5.0, 0, 0], [0, 0, 0.2], [0, 0, 3], [0.9, 1, 0]])
    d = parity.disagreement(f, q, y)
    assert d["count"] == 2 and d["fraction"] == 0.5
    assert d["float_right"] == 2 and d["int8_right"] == 0
    assert [i["index"] for i in d["images"]] == [3, 1]  # smallest float margin first
    assert d["images"][0]["float_margin"] < d["images"][1]["float_margin"]
    assert d["median_float_margin"] < d["median_float_margin_all"]


def test_layer_label():
    names = ["conv2", "dense"]
    assert qdebug.layer_label("functional_1/conv2_1/Relu;functional_1/conv2_1/BiasAdd",
                              names) == "conv2"
    nested = ["backbone", "conv2", "dense"]  # a layer inside a nested model: the layer
    assert qdebug.layer_label("functional_1/backbone_1/conv2_1/Relu", nested) == "conv2"
    assert qdebug.layer_label("StatefulPartitionedCall_1:", names) == "dense"  # the output
    assert qdebug.layer_label("other/Reshape", names) == "other/Reshape"
