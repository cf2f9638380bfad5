"""The model registry's names, tasks and settings as data (catalogue.json), so that validating
params.yaml (`cnnzoo check`, `cnnzoo run`, every stage's start) needs no TensorFlow import.

The registry (cnnzoo/models) stays the one source: `python -m cnnzoo.models.catalogue` rewrites
the file from it, and tests/test_models.py fails, saying so, when the two differ.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

PATH = Path(__file__).with_name("catalogue.json")


@functools.cache
def _entries() -> dict[str, dict]:
    return json.loads(PATH.read_text())


def list_models(task: str | None = "classify") -> list[str]:
    """As cnnzoo.models.list_models: registered names for `task` (None: every task)."""
    return sorted(k for k, e in _entries().items() if task is None or e["task"] == task)


def model_hparams(name: str) -> set[str]:
    """As cnnzoo.models.model_hparams: the settings the builder of `name` accepts."""
    try:
        return set(_entries()[name]["hparams"])
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models(None))}") from None
