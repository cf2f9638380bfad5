"""The lecture's deployment claim, measured: what canonical networks weigh as files.

Each network is built at its canonical size (224×224×3, 1000 classes by default) with random
weights, which do not change any size: saved as a `.keras` file and converted to float32,
float16 and full-integer int8 TFLite (per-channel, calibrated on a few random images, since
only the file size is wanted). Slow (minutes on a CPU), hence its own cached DVC stage. The
table's formats are reporting/sizes_table.py's.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cnnzoo.config import SizesConfig

log = logging.getLogger(__name__)

MB = 2**20
# The lecture (MobileNets slide): "VGG-16 ≈ 528 MB, ResNet-152 ≈ 230 MB, Inception ≈ 85 MB,
# but MobileNet ≈ 5-16 MB". Its Inception is Inception-v3 (23.9M parameters, keras.applications'
# 92 MB); GoogLeNet (Inception v1, 6.6M without the auxiliary heads) is much smaller.
LECTURE_MB = {"vgg16": "528", "resnet152": "230", "googlenet": "85 (Inception-v3)",
              "mobilenet_v1": "5-16", "mobilenet_v2": "5-16"}
CALIBRATION_IMAGES = 2


def measure(name: str, cfg: SizesConfig, seed: int = 0) -> dict:
    import keras

    from cnnzoo.deploy import convert
    from cnnzoo.models import create_model
    from cnnzoo.training.saving import save_model

    keras.utils.set_random_seed(seed)
    shape = (cfg.input_size, cfg.input_size, cfg.channels)
    model = create_model(name, input_shape=shape, num_classes=cfg.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.keras"
        save_model(model, path)  # the pipeline's own .keras files, byte for byte
        keras_bytes = path.stat().st_size
    rep = np.random.default_rng(seed).random((CALIBRATION_IMAGES, *shape), dtype=np.float32)
    files = convert.convert_all(model, ["float32", "float16", "int8"], rep, per_channel=True)
    row = {"model": name, "params": int(model.count_params()),
           "keras_mb": round(keras_bytes / MB, 2),
           **{f"{v}_mb": round(len(b) / MB, 2) for v, b in files.items()},
           "lecture_mb": LECTURE_MB.get(name, "") if _canonical(cfg) else ""}
    log.info("%s: %s params, keras %.1f MB, TFLite float32 %.1f / float16 %.1f / int8 %.1f MB",
             name, f"{row['params']:,}", row["keras_mb"], row["float32_mb"], row["float16_mb"],
             row["int8_mb"])
    return row


def _canonical(cfg: SizesConfig) -> bool:
    return (cfg.input_size, cfg.channels, cfg.num_classes) == (224, 3, 1000)


def measure_all(cfg: SizesConfig) -> list[dict]:
    return [measure(name, cfg) for name in tqdm(cfg.models, desc="sizes", unit="model",
                                                disable=None)]
