import numpy as np
import pytest

from cnnzoo.data.idx import IdxError, parse_idx
from tests.datafiles import to_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(dtype):
    a = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    b = parse_idx(to_idx(a))
    assert b.shape == (2, 3, 4) and b.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a, b)


def test_header_is_big_endian_mnist_layout():
    data = to_idx(np.zeros((60000, 28, 28), np.uint8)[:2])
    assert data[:4] == bytes([0, 0, 0x08, 3])
    assert int.from_bytes(data[4:8], "big") == 2 and int.from_bytes(data[8:12], "big") == 28


def test_bad_magic_and_truncation_name_the_file():
    good = to_idx(np.ones((3, 4), np.uint8))
    with pytest.raises(IdxError, match="labels.*bad magic"):
        parse_idx(b"\x1f\x8b" + good[2:], "labels")
    with pytest.raises(IdxError, match="images: size .* does not match"):
        parse_idx(good[:-1], "images")
    with pytest.raises(IdxError, match="unknown IDX data type"):
        parse_idx(bytes([0, 0, 0x42, 1, 0, 0, 0, 0]), "x")
