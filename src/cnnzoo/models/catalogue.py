"""Writes config/catalogue.json from the live registry: `python -m cnnzoo.models.catalogue` after
adding or changing a model builder (params validation reads the file, without TensorFlow)."""

from __future__ import annotations

import logging

from cnnzoo.config import catalogue
from cnnzoo.files import write_json
from cnnzoo.models import get_entry, list_models, model_hparams


def from_registry() -> dict[str, dict]:
    """What catalogue.json should hold: every registered model's task and settings."""
    return {name: {"task": get_entry(name).task, "hparams": sorted(model_hparams(name))}
            for name in list_models(None)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    entries = from_registry()
    write_json(catalogue.PATH, entries)
    logging.getLogger(__name__).info("%s: %d models", catalogue.PATH, len(entries))
