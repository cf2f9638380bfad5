"""The robustness pipeline: one cached stage off `make run`'s path (`make robustness`), every
family's Keras model and int8 file on corrupted test images (cnnzoo.tasks.robustness)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from cnnzoo.config import Params
from cnnzoo.stages.common import experiment_tags
from cnnzoo.tracking.client import stage_run

log = logging.getLogger(__name__)


def robustness(params: Params, *, prepared: str, models: str, exports: str, csv: str, md: str,
               plot: str) -> None:
    """Per family (`base.archs`): mCA of `models/<arch>.keras` and of
    `exports/<arch>/<arch>_int8.tflite`, per corruption; the table (CSV and Markdown, which the
    report includes when present) and the per-corruption figure."""
    from cnnzoo.data.datasets import load_split
    from cnnzoo.data.serving_input import to_unit
    from cnnzoo.reporting import robustness_table
    from cnnzoo.tasks.robustness import corrupted_suite

    cfg = params.robustness
    x, y = load_split(prepared, "b_test")
    x, y = to_unit(x[:cfg.images]), y[:cfg.images]
    suite = corrupted_suite(x, params.base.seed)
    rows = []
    with stage_run("robustness", None, experiment=params.base.experiment,
                   params={"robustness": cfg.model_dump(), "archs": params.base.archs},
                   tags=experiment_tags(params)) as run:
        for arch in params.base.archs:
            int8_file = Path(exports) / arch / f"{arch}_int8.tflite"
            found = _measure(Path(models) / f"{arch}.keras", int8_file, x, y, suite)
            rows.append(robustness_table.row(arch, found, int8_file.stat().st_size,
                                             hashlib.sha256(int8_file.read_bytes()).hexdigest()))
            run.log_metrics({f"{arch}_{m}_mca": found[m]["mca"] for m in found})
            log.info("robustness %s: mCA Keras %.4f, int8 %.4f (clean %.4f / %.4f)", arch,
                     found["keras"]["mca"], found["int8"]["mca"],
                     found["keras"]["clean_accuracy"], found["int8"]["clean_accuracy"])
        robustness_table.write(rows, csv, md, images=len(y))
        robustness_table.figure(rows, plot)
        for path in (csv, md, plot):
            run.log_artifact(path)
    log.info("robustness -> %s\n%s", md, Path(md).read_text())


def _measure(model: Path, int8_file: Path, x, y, suite) -> dict:
    import keras
    import numpy as np

    from cnnzoo.deploy.convert import LiteModel
    from cnnzoo.tasks.robustness import corruption_accuracy

    net = keras.models.load_model(model)
    lite = LiteModel(int8_file.read_bytes())
    return {"keras": corruption_accuracy(
                lambda a: np.argmax(net.predict(a, batch_size=256, verbose=0), -1), x, y, suite),
            "int8": corruption_accuracy(lambda a: lite.predict_classes(a, f"{model.stem} int8"),
                                        x, y, suite)}
