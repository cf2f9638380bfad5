"""Shared fixtures: generated IDX datasets and a loopback HTTP server (tests never go online)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from cnnzoo.data.fetch import OFFLINE_ENV, DataFile, DatasetSpec
from tests.datafiles import to_idx

ROOT = Path(__file__).resolve().parents[1]
# dvc.yaml declares src/ files as dependencies, so a project copy needs them (and runs them).
PROJECT_FILES = ["dvc.yaml", "pipelines", "src", ".dvc/config", ".dvcignore"]


def copy_project(root: Path, params: Path = ROOT / "tests" / "tiny_params.yaml"):
    """A runnable copy of the project in `root` (a git repo, `params` as params.yaml) and the
    environment to run it with: offline, this interpreter first on PATH, the default store."""
    for rel in PROJECT_FILES:
        src, dst = ROOT / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dst)
    shutil.copy(params, root / "params.yaml")
    env = {**os.environ, OFFLINE_ENV: "1", "PYTHONPATH": str(root / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)  # exercise the default embedded store
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the stages must quieten TensorFlow themselves
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    return root, env


GIT = ("git", "-c", "user.name=cnnzoo", "-c", "user.email=cnnzoo@localhost")

# The zoo tests' inner-loop tier (`make test-fast`): the families' cheapest builds; every other
# registered variant (deeper ResNets, DenseNets, ResNeXts, VGGs, MobileNet V2) runs as `slow`.
FAST_MODELS = ("lenet5", "first_cnn", "alexnet", "alexnet_cifar", "zfnet", "vgg11", "nin",
               "googlenet", "resnet20", "mobilenet_v1")


def tiered(names, fast=FAST_MODELS) -> list:
    """pytest parameters for model `names`: those in `fast` as they are, the rest marked slow."""
    return [n if n in fast else pytest.param(n, marks=pytest.mark.slow) for n in names]


def commit_all(root: Path, message: str) -> None:
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-q", "--allow-empty", "-m", message], cwd=root, check=True)


def fashion_mnist_files() -> str | None:
    """Fashion-MNIST offline: $CNNZOO_DATA_MIRROR or the Debian package's folder."""
    from cnnzoo.data.fetch import FASHION_MNIST, MIRROR_ENV

    for candidate in (os.environ.get(MIRROR_ENV), FASHION_MNIST.system_dir):
        if candidate and Path(candidate).is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def default_project(tmp_path_factory):
    """The project with tiny params, committed to git as its default (what a clone of it is):
    test_pipeline_e2e runs `cnnzoo run` on it, test_readme then the own-data recipe."""
    from cnnzoo.data.fetch import FASHION_MNIST, MIRROR_ENV

    source = fashion_mnist_files()
    if source is None:
        pytest.skip(f"Fashion-MNIST not available offline: apt-get install {FASHION_MNIST.package}"
                    f" or set {MIRROR_ENV}")
    root, env = copy_project(tmp_path_factory.mktemp("project"))
    env[MIRROR_ENV] = source
    shutil.copy(ROOT / ".gitignore", root / ".gitignore")
    commit_all(root, "the project with tiny params")
    return root, env


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
