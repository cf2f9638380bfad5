"""Test helpers that write and read the project's data formats (the library only reads IDX and
only parses TFRecord batches)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import tensorflow as tf

from cnnzoo.data.augment import parse_records
from cnnzoo.data.idx import _CODES, _DTYPES, IdxError


def to_idx(array: np.ndarray) -> bytes:
    """`array` as IDX bytes (the MNIST files' format), for small datasets served to the tests."""
    dtype = array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype
    if dtype not in _CODES:
        raise IdxError(f"dtype {array.dtype} has no IDX code")
    code = _CODES[dtype]
    big = array.astype(_DTYPES[code], copy=False)
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()


def read_shards(paths: list[Path], image_shape: tuple[int, ...]) -> tf.data.Dataset:
    """(uint8 image, int64 label) per record of the augment stage's shards, in order."""
    return tf.data.TFRecordDataset([str(p) for p in paths]).map(
        lambda r: parse_records(r, image_shape))
