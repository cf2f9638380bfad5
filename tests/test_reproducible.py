"""Every kind of file the pipeline writes is the same bytes for the same data, whatever the
process, its PYTHONHASHSEED or the clock: otherwise DVC reruns every stage downstream of a
rerun that changed nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

WRITERS = r'''
import sys
from pathlib import Path

import numpy as np

from cnnzoo.data.augment import write_shards
from cnnzoo.config import AugmentConfig
from cnnzoo.files import csv_text, write_json, write_npz, write_text
from cnnzoo.models import create_model
from cnnzoo.training.saving import save_model
from cnnzoo.reporting.figures import augmentation_grid

out = Path(sys.argv[1])
out.mkdir()
rng = np.random.default_rng(0)
x = rng.integers(0, 255, (40, 32, 32, 1), dtype=np.uint8)
y = (np.arange(40) % 4).astype(np.int32)
write_shards(x, y, AugmentConfig(copies=2), 3, out, "a_train")  # TFRecords
write_npz(out / "split.npz", x=x, y=y)  # prepared splits and scenes
import keras

from cnnzoo.deploy.convert import convert_all

keras.utils.set_random_seed(0)
for arch in ("lenet5", "mobilenet_v2"):  # shared objects in the config: ids to renumber
    model = create_model(arch, input_shape=(32, 32, 1), num_classes=4)
    save_model(model, out / f"{arch}.keras")
calibration = (x[:8] / 255.0).astype(np.float32)
for variant, content in convert_all(model, ["float32", "int8"], calibration).items():
    (out / f"{variant}.tflite").write_bytes(content)
write_json(out / "metrics.json", {"z": 0.1 + 0.2, "a": {"b": [1, 2.5e-7]}, "set": sorted({"q", "p"})})
write_text(out / "table.csv", csv_text([{"arch": "lenet5", "accuracy": 1 / 3}], ["arch", "accuracy"]))
augmentation_grid(x[:4] / 255.0, [x[4:8] / 255.0], out / "preview.png")  # matplotlib PNG
'''


def _write(tmp_path: Path, name: str, hash_seed: str) -> Path:
    script = tmp_path / "writers.py"
    script.write_text(WRITERS)
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "CNNZOO_WARM": "off"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / name)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / name


@pytest.mark.slow
def test_every_writer_gives_the_same_bytes_in_another_process(tmp_path):
    first = _write(tmp_path, "first", "1")
    time.sleep(2.1)  # past zip's 2-second time resolution: a stored date would differ
    second = _write(tmp_path, "second", "3")  # 1 and 3 order protobuf maps differently
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert {"a_train-000.tfrecord", "split.npz", "lenet5.keras", "mobilenet_v2.keras",
            "metrics.json", "table.csv", "preview.png", "int8.tflite"} <= set(names)
    differ = [n for n in names if (first / n).read_bytes() != (second / n).read_bytes()]
    assert not differ, f"new bytes from the same data: {differ}"


def test_a_normalised_keras_file_reloads_to_the_same_model(tmp_path):
    import keras
    import numpy as np

    from cnnzoo.models import create_model
    from cnnzoo.training.saving import save_model

    keras.utils.set_random_seed(1)
    model = create_model("mobilenet_v2", input_shape=(32, 32, 1), num_classes=3)
    save_model(model, tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")  # safe_mode: the renumbered config
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
