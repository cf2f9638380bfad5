"""Images -> a cnnzoo classifier's input, as its model.json says: the one pre-processing of
`cnnzoo predict`, the MLflow pyfunc model (`mlflow.pyfunc.load_model`, `mlflow models serve`).

numpy only, no cnnzoo imports: the pyfunc model carries this file (MLflow `code_paths`) and runs
wherever numpy and LiteRT install. Accepted: one image (H, W) or (H, W, C), or a batch (N, H, W)
or (N, H, W, C), C = 1 (grey), 3 (RGB) or 4 (RGBA, alpha dropped), any size, uint8 (0..255) or
float (0..1; values above 1 are read as 0..255). Colour becomes grey by ITU-R BT.601 luma (as
PIL's "L" mode and the datasets' own conversion); the size becomes model.json's through
`source_size` and `fit` as the training images' did.
"""

from __future__ import annotations

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def to_unit(x) -> np.ndarray:
    """uint8 pixels (0..255) -> float32 in [0, 1]: the one scaling that every model trains,
    evaluates, calibrates its int8 export and serves with (data.datasets.to_float is this
    function's TensorFlow twin, for tf.data pipelines)."""
    return np.asarray(x).astype(np.float32) / 255.0


class InputShapeError(ValueError):
    """Input that no rule above turns into images; the message is one line."""


def _weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear resampling weights; a triangle filter widened by the reduction
    factor when shrinking (antialiased, as PIL's BILINEAR)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize(batch: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, H, W, C) float images resized to (N, height, width, C)."""
    if batch.shape[1:3] == (height, width):
        return batch
    return np.einsum("oh,nhwc,pw->nopc", _weights(batch.shape[1], height), batch,
                     _weights(batch.shape[2], width), optimize=True)


def as_batch(x, channels: int) -> np.ndarray:
    """Any accepted input as float32 (N, H, W, channels) in [0, 1]."""
    if hasattr(x, "to_numpy"):  # a pandas DataFrame (mlflow models serve's dataframe formats)
        x = x.to_numpy()
    x = np.asarray(x)
    if x.dtype == object or x.dtype == bool or x.size == 0:
        raise InputShapeError(f"images of dtype {x.dtype} and shape {x.shape}: expected numbers "
                              "(uint8 0..255 or float 0..1)")
    if x.ndim == 2:
        x = x[None, ..., None]
    elif x.ndim == 3:
        x = x[None] if x.shape[-1] in (1, 3, 4) else x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise InputShapeError(f"images of shape {x.shape}: expected (N, H, W, C) with C = 1, 3 "
                              "or 4, grey (N, H, W), or one image (H, W) or (H, W, C)")
    integer = np.issubdtype(x.dtype, np.integer)
    x = x.astype(np.float32)
    if integer or x.max() > 1.0:  # read as 0..255
        x = to_unit(x)
    if x.shape[-1] == 4:
        x = x[..., :3]
    if channels == 1 and x.shape[-1] == 3:
        x = (x @ _LUMA)[..., None]
    elif channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def to_model_input(x, card: dict, keep_model_size: bool = True) -> np.ndarray:
    """float32 (N, H, W, C) as the model takes it. Images already at the model's input size pass
    unchanged when `keep_model_size` (the pyfunc's earlier contract: pre-processed input);
    others are resized to `source_size` and zero-padded (`fit: pad`) or resized (`fit: resize`)."""
    height, width, channels = card["input"]["shape"]
    batch = as_batch(x, channels)
    if keep_model_size and batch.shape[1:3] == (height, width):
        return batch
    inp = card["input"]
    h, w = inp.get("source_size", [height, width]) if inp.get("fit") == "pad" else (height, width)
    h, w = min(h, height), min(w, width)
    batch = resize(batch, h, w)
    top, left = (height - h) // 2, (width - w) // 2  # as data.prepare.pad_to
    out = np.zeros((len(batch), height, width, channels), np.float32)
    out[:, top:top + h, left:left + w] = batch
    return np.clip(out, 0.0, 1.0)


def border_brightness(batch: np.ndarray) -> np.ndarray:
    """Mean of each image's outermost rows and columns (N,), in [0, 1]: its background."""
    edges = np.concatenate([batch[:, 0], batch[:, -1], batch[:, :, 0], batch[:, :, -1]], axis=1)
    return edges.reshape(len(batch), -1).mean(axis=1)
