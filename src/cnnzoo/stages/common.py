"""What every stage shares: the entry point, and what its MLflow run says about its data.

`run_stage` turns the project's expected errors (bad params, missing data, bad checksums) into
one clear log line and names the failed stage as DVC does (`pretrain@lenet5`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnzoo import config, logs, progress
from cnnzoo.config import Params
from cnnzoo.files import read_json

log = logging.getLogger(__name__)
EXPECTED_ERRORS = (config.ConfigError, ValueError, FileNotFoundError, RuntimeError)


def run_stage(fn: Callable[..., object], **kwargs) -> None:
    """Entry point for stage scripts: logging, params from `params` path, clean failures.

    The stage is named as DVC names it (`pretrain@lenet5`), here and to `cnnzoo run`, which
    repeats the failed stage and its cause as the last line of the pipeline's output.
    """
    entered = time.time()
    logs.setup()
    params_path = kwargs.pop("params", config.DEFAULT_PARAMS)
    name = kwargs.get("stage", fn.__name__) + (f"@{kwargs['arch']}" if kwargs.get("arch") else "")
    progress.stage_started(name)
    try:
        params = config.load(params_path)
        # Registers the project's Keras layers (FusedBatchNormalization, ...) so that any stage
        # can load_model() a saved network; a stage forked by `cnnzoo run` has them already,
        # one in its own process (plain `dvc repro`) did not: segment_evaluate failed there.
        import cnnzoo.models  # noqa: F401

        if prepare := getattr(fn, "prepare", None):  # a training stage (stages/training.py)
            prepare(params, name, kwargs)
        began = time.time()
        fn(params, **kwargs)
        progress.stage_times(name, entered, began, time.time())
    except EXPECTED_ERRORS as err:
        progress.stage_failed(name, err)
        log.error("%s failed: %s", name, err)
        log.debug("traceback (CNNZOO_LOG_LEVEL=DEBUG)", exc_info=True)
        sys.exit(1)
    except Exception as err:  # a bug: keep the traceback, but still say which stage
        progress.stage_failed(name, err)
        raise
    progress.stage_succeeded()


def log_data(run, params: Params, x: np.ndarray, y: np.ndarray, part: str,
             context: str) -> None:
    """`x, y` as the run's MLflow dataset input, named as the UI shows it (`fashion_mnist:task_B`,
    `folder:task_A`), with the configured source (name or folder)."""
    run.log_dataset(x, y, name=f"{params.data.source}:{part.replace(' ', '_')}",
                    source=params.data.path or params.data.source, context=context)


def data_record(folder: str | Path) -> dict[str, str | None]:
    """What a metrics file says about its data: the source and the digest of the splits that the
    download (data/prepared) or scenes (data/scenes) stage wrote, so the report can tell when two
    pipelines' results come from different data."""
    meta = read_json(Path(folder) / "meta.json")
    source = meta["source"] if "from" not in meta else f"{meta['source']} of {meta['from']}"
    return {"source": source if not meta.get("path") else f"{source}:{meta['path']}",
            "digest": meta.get("digest")}


def experiment_tags(params: Params) -> dict[str, str]:
    """What the MLflow UI groups and compares runs by (also logged as params)."""
    return {"strategy": params.transfer.strategy, "weights": params.pretrain.weights,
            "labels_per_class": str(params.data.labels_per_class or "all")}
