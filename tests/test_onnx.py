"""The second runtime: ONNX (tf2onnx) through onnxruntime. The file's bytes depend on the model
alone (not on the process's string hashing), its logits are the Keras model's, and the export
measures and gates it like a TFLite variant."""

import subprocess
import sys

import numpy as np
import pytest

from cnnzoo.config import ExportConfig
from cnnzoo.deploy import onnx_runtime, parity

# A fixed model built in a fresh process: tf2onnx's naming varied with PYTHONHASHSEED.
_BUILD = """
import hashlib, sys
import keras
from cnnzoo.deploy.onnx_runtime import to_onnx
from cnnzoo.models import create_model
keras.utils.set_random_seed(0)
net = create_model("resnet20", input_shape=(32, 32, 1), num_classes=5)
print(hashlib.sha256(to_onnx(net)).hexdigest())
"""


def test_the_same_model_gives_the_same_bytes_in_any_process():
    digests = {subprocess.run([sys.executable, "-c", _BUILD], capture_output=True, text=True,
                              env={"PYTHONHASHSEED": seed, **_env()}, timeout=300,
                              check=True).stdout.split()[-1] for seed in ("1", "2")}
    assert len(digests) == 1


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}


@pytest.fixture(scope="module")
def net():
    import keras

    from cnnzoo.models import create_model

    keras.utils.set_random_seed(0)
    return create_model("resnet20", input_shape=(32, 32, 1), num_classes=5)


def test_onnxruntime_gives_the_keras_logits_at_any_batch(net):
    x = np.random.default_rng(0).random((37, 32, 32, 1)).astype(np.float32)
    model = onnx_runtime.OnnxModel(onnx_runtime.to_onnx(net), num_threads=2)
    want = net.predict(x, verbose=0)
    assert np.abs(model.predict_logits(x, batch_size=16) - want).max() < 1e-4
    latency = model.latency(x[0], runs=5, warmup=1)
    assert 0 < latency["median_ms"] <= latency["p90_ms"]


def test_the_export_gates_onnx_like_a_tflite_variant(net):
    rng = np.random.default_rng(1)
    x = rng.random((60, 32, 32, 1)).astype(np.float32)
    y = np.argmax(net.predict(x, verbose=0), axis=1)  # the Keras model is right by definition
    split = parity.Split(x, y)
    cfg = ExportConfig(latency_runs=3, latency_threads=[1], int8_scales="per_channel")
    files, result = parity.convert_and_measure(net, cfg, x_rep=x[:16], val=split, test=split,
                                               name="resnet20")
    onnx = result["onnx"]
    assert onnx["size_bytes"] == len(files["onnx"]) and onnx["accuracy"] == 1.0
    assert onnx["drop"] == 0.0 and onnx["max_abs_logit_diff_float32"] < 1e-4
    assert set(onnx["latency"]) == {"1t_median_ms", "1t_p90_ms"}
    broken = {**result, "onnx": {**onnx, "accuracy": 0.5, "drop": 0.5}}
    assert any(f.startswith("onnx accuracy 0.5000") for f in parity.gate_failures(broken, 0.01))
    _, without = parity.convert_and_measure(net, ExportConfig(onnx=False, latency_runs=3,
                                                              latency_threads=[1]),
                                            x_rep=x[:16], val=split, test=split, name="r")
    assert "onnx" not in without
