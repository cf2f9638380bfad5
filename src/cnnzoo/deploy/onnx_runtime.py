"""The second runtime: a Keras classifier as ONNX (tf2onnx), run by onnxruntime on the CPU.

tf2onnx converts the model's TensorFlow graph (a `tf.function` of the Keras model, weights
frozen to constants) with a dynamic batch dimension. Its tensor names depend on Python's string
hashing (shared constants are de-duplicated in set order), so the same model gave other bytes in
another process; `_canonical` renames every internal tensor and node by graph order, so the
file's bytes depend on the model alone, as DVC expects of an output.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from cnnzoo.logs import native_output

OPSET = 17


def to_onnx(net) -> bytes:
    import tensorflow as tf
    import tf2onnx

    spec = tf.TensorSpec((None, *net.input_shape[1:]), tf.float32, name="image")
    fn = tf.function(lambda image: net(image, training=False))
    with native_output("tf2onnx"):
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=[spec], opset=OPSET)
    return _canonical(proto).SerializeToString()


def _canonical(model):
    """`model` with internal tensors named t0, t1, ... and nodes n0, n1, ... in graph order,
    initializers in that order; the graph's inputs and outputs keep their names."""
    g = model.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for i, node in enumerate(g.node):
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        node.name = f"n{i}"
    for init in g.initializer:
        init.name = rename(init.name)
    inits = sorted(g.initializer, key=lambda t: int(t.name[1:]) if t.name[1:].isdigit() else -1)
    copies = [type(t)() for t in inits]
    for copy, t in zip(copies, inits, strict=True):
        copy.CopyFrom(t)
    del g.initializer[:]
    g.initializer.extend(copies)
    del g.value_info[:]  # shape hints only: onnxruntime infers them again
    g.name = "cnnzoo"
    return model


class OnnxModel:
    """An ONNX file behind onnxruntime's CPU provider, taking float images in [0, 1]."""

    def __init__(self, content: bytes, num_threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def predict_logits(self, x: np.ndarray, desc: str = "", batch_size: int = 250) -> np.ndarray:
        starts = tqdm(range(0, len(x), batch_size), desc=desc, unit="batch", disable=None,
                      leave=False)
        return np.concatenate([self.session.run(None, {self.input: x[i:i + batch_size]
                                                       .astype(np.float32)})[0]
                               for i in starts])

    def latency(self, img: np.ndarray, runs: int = 100, warmup: int = 10) -> dict[str, float]:
        """Batch-1 `run()` time in ms, as `LiteModel.latency` measures it."""
        feed = {self.input: img[None].astype(np.float32)}
        for _ in range(warmup):
            self.session.run(None, feed)
        times = np.empty(runs)
        for i in range(runs):
            start = time.perf_counter()
            self.session.run(None, feed)
            times[i] = time.perf_counter() - start
        return {"median_ms": float(np.median(times) * 1e3),
                "p90_ms": float(np.percentile(times, 90) * 1e3)}
