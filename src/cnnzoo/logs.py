"""Logging set-up shared by the stage scripts and the CLI."""

from __future__ import annotations

import logging
import os


def setup(level: str | None = None) -> None:
    """One informative line per phase; TensorFlow's C++ chatter is silenced unless asked for."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=(level or os.environ.get("CNNZOO_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # MLflow and alembic log every migration step on a fresh store; keep that out of stage logs.
    for noisy in ("alembic", "mlflow.store", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
