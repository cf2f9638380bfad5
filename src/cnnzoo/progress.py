"""How a stage tells `cnnzoo run` (cnnzoo/tools/runner.py) what it is doing, through files whose
paths travel in the environment (DVC passes it on to stage commands): the failure file (a stage
writes its name when it starts, removes the file when it succeeds and adds the cause when it
fails), the stage times and the runs MLflow did not record. Imports nothing heavy: every stage
loads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cnnzoo.files import write_json

FAILURE_ENV = "CNNZOO_FAILURE_FILE"
UNTRACKED_ENV = "CNNZOO_UNTRACKED_FILE"  # cnnzoo.tracking.client lists runs MLflow did not record
TIMES_ENV = "CNNZOO_TIMES_FILE"  # each stage appends when it entered, began its work, ended


def stage_started(stage: str) -> None:
    if path := os.environ.get(FAILURE_ENV):
        write_json(path, {"stage": stage})


def stage_times(stage: str, entered: float, began: float, ended: float) -> None:
    """Append one stage's wall-clock times (time.time()): its entry into `run_stage` (after the
    process start and imports), the start and the end of its own work."""
    if path := os.environ.get(TIMES_ENV):
        line = json.dumps({"stage": stage, "entered": entered, "began": began, "ended": ended})
        with open(path, "a") as f:  # one short line per write: appends do not interleave
            f.write(line + "\n")


def stage_succeeded() -> None:
    if path := os.environ.get(FAILURE_ENV):
        Path(path).unlink(missing_ok=True)


def stage_failed(stage: str, err: BaseException) -> None:
    if path := os.environ.get(FAILURE_ENV):
        first = (str(err).strip().splitlines() or [""])[0]
        write_json(path, {"stage": stage, "cause": f"{type(err).__name__}: {first}"})
