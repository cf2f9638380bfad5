"""Logging set-up shared by the stage scripts and the CLI.

A normal run shows one informative line per phase. TensorFlow, XLA/MLIR and LiteRT write their own
C++ log lines (CPU-feature banners, SavedModel loading, converter settings) straight to the
terminal; those are silenced unless `CNNZOO_LOG_LEVEL=DEBUG`, which brings everything back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

LEVEL_ENV = "CNNZOO_LOG_LEVEL"


def level() -> str:
    return os.environ.get(LEVEL_ENV, "INFO").upper()


def quiet_native_logs() -> None:
    """Set TensorFlow's C++ log threshold. Must run before TensorFlow is imported (the package's
    `__init__` calls it), because the C++ runtime reads the variable once, when it loads.

    Level 3 rather than the usual 2: TF 2.21 logs a harmless ERROR line ("NodeDef mentions
    attribute use_unbounded_threadpool ...") for every tf.data map, and real failures reach the
    user as Python exceptions anyway. An explicit TF_CPP_MIN_LOG_LEVEL wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if level() == "DEBUG" else "3")


def setup(default: str | None = None) -> None:
    """Configure the root logger: `CNNZOO_LOG_LEVEL`, else `default`, else INFO."""
    lvl = os.environ.get(LEVEL_ENV, default or "INFO").upper()
    logging.basicConfig(level=lvl, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # A second call sets the level (basicConfig alone would not): `cnnzoo` starts quiet, and the
    # commands that report as they go (sweep, seeds) turn INFO on.
    logging.getLogger().setLevel(lvl)
    if lvl == "DEBUG":
        return
    # MLflow and alembic log every migration step on a fresh store, and TensorFlow's Python logger
    # announces every SavedModel it writes (twice: its own handler, then ours).
    for noisy in ("alembic", "mlflow.store", "urllib3", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def native_output(what: str) -> Iterator[None]:
    """Capture what C/C++ code writes to the process's stdout/stderr (file descriptors 1 and 2,
    which Python's logging cannot filter), e.g. the TFLite converter's quantizer settings. It is
    replayed at DEBUG level, or as a warning when the block raises, so nothing is lost."""
    if level() == "DEBUG":
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                logging.getLogger(__name__).log(logging.WARNING if failed else logging.DEBUG,
                                                "%s wrote:\n%s", what, text)
