"""The README's CIFAR-10 recipe for the using-CNNs lecture's `alexnet_cifar` ("AlexNet gets us to around 75%
in validation accuracy"), exercised offline: its `dvc exp run -S` overrides on params.yaml, on a
generated CIFAR-10 binary tarball served from a loopback server under the real archive's name,
through the download, augment and pretrain stages (only the epochs and the per-class counts are
cut to fit a test)."""

import hashlib
import io
import json
import tarfile

import keras
import numpy as np
import pytest

from cnnzoo import config
from cnnzoo.data import sources
from cnnzoo.data.fetch import MIRROR_ENV, OFFLINE_ENV, DataFile, DatasetSpec
from cnnzoo.stages.classify import pretrain
from cnnzoo.stages.data import augment, download
from tests.test_readme import by_program, with_overrides, words

pytestmark = pytest.mark.e2e

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar10_tarball(per_batch: int = 40, n_test: int = 40, seed: int = 0) -> bytes:
    """CIFAR-10's binary layout: five data batches and a test batch of <label byte><3072 bytes,
    channel-major>, and batches.meta.txt; each class a colour, so the network can learn it."""
    rng = np.random.default_rng(seed)

    def records(n):
        labels = np.arange(n) % 10
        images = rng.integers(0, 80, (n, 3, 32, 32), dtype=np.uint8)
        for c in range(10):
            images[labels == c, c % 3, 4 + 2 * c:8 + 2 * c] = 250
        return b"".join(bytes([lab]) + img.tobytes() for lab, img in zip(labels, images,
                                                                          strict=True))

    members = {f"cifar-10-batches-bin/data_batch_{i}.bin": records(per_batch) for i in range(1, 6)}
    members["cifar-10-batches-bin/test_batch.bin"] = records(n_test)
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(NAMES) + "\n").encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def recipe() -> list[str]:
    (cmd,) = [c for c in by_program("dvc") if "alexnet_cifar" in c]
    return words(cmd)


def test_readme_recipe_trains_alexnet_cifar_on_cifar10_files(tmp_path, monkeypatch, http_server):
    argv = recipe()
    assert argv[1:4] == ["exp", "run", "pretrain@alexnet_cifar"]
    raw = with_overrides(argv)
    assert raw["data"]["source"] == "cifar10" and "alexnet_cifar" in raw["base"]["archs"]
    # The test's cuts: one epoch, and per-class counts the 200 generated images can fill.
    raw["pretrain"]["epochs"] = 1
    raw["data"].update(val_per_class=2, b_pool_per_class=4, labels_per_class=2)
    params = config.parse(raw, "the README's CIFAR-10 recipe")

    tarball = cifar10_tarball()
    served = tmp_path / "served"
    served.mkdir()
    (served / "cifar-10-binary.tar.gz").write_bytes(tarball)
    spec = DatasetSpec("cifar10", (DataFile("cifar-10-binary.tar.gz",
                                            hashlib.sha256(tarball).hexdigest(), len(tarball),
                                            hashlib.md5(tarball).hexdigest(),
                                            decompress=False),), urls=())
    monkeypatch.setitem(sources._CIFAR, "cifar10", (spec, *sources._CIFAR["cifar10"][1:]))
    monkeypatch.setenv(MIRROR_ENV, http_server(served))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)

    download(params, out="data/prepared", cache=".cache/datasets")
    meta = json.loads((tmp_path / "data/prepared/meta.json").read_text())
    assert meta["image_shape"] == [32, 32, 3] and len(meta["task_a"]["classes"]) == 10
    augment(params, prepared="data/prepared", out="data/augment",
            preview="plots/augment/preview.png")
    pretrain(params, arch="alexnet_cifar", prepared="data/prepared", augmented="data/augment",
             out="models/pretrain/alexnet_cifar.keras",
             metrics="metrics/pretrain/alexnet_cifar.json",
             history="plots/pretrain/alexnet_cifar.csv")
    result = json.loads((tmp_path / "metrics/pretrain/alexnet_cifar.json").read_text())
    assert 0.0 <= result["val_accuracy"] <= 1.0 and result["train_images"] > 0
    model = keras.models.load_model(tmp_path / "models/pretrain/alexnet_cifar.keras")
    assert model.input_shape == (None, 32, 32, 3) and model.count_params() == 2_875_018
