"""Shared fixtures: generated IDX datasets and a loopback HTTP server (tests never go online)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cnnzoo.data.fetch import DataFile, DatasetSpec  # noqa: E402
from cnnzoo.data.idx import to_idx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_idx_dataset(folder: Path, n_train: int = 400, n_test: int = 100, classes: int = 10,
                     seed: int = 0, compress: bool = True) -> DatasetSpec:
    """Write a small MNIST-shaped IDX dataset (class-dependent patterns) and return its spec."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = (np.arange(n) % classes).astype(np.uint8)
        x = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for c in range(classes):  # a bright bar whose row depends on the class: learnable
            x[y == c, 2 + 2 * c: 4 + 2 * c, 4:24] = 250
        arrays[f"{split}-images-idx3-ubyte"] = x
        arrays[f"{split}-labels-idx1-ubyte"] = y
    files = []
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        payload = to_idx(arrays[name])
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
        files.append(DataFile(name, hashlib.sha256(payload).hexdigest(), len(payload)))
    return DatasetSpec(name="tiny", files=tuple(files), urls=())


@pytest.fixture
def idx_dataset(tmp_path) -> tuple[Path, DatasetSpec]:
    folder = tmp_path / "served"
    return folder, make_idx_dataset(folder)


@pytest.fixture
def http_server():
    """Factory: serve a folder on 127.0.0.1 and return its base URL; stopped after the test."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a, **k: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()
