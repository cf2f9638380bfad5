"""Model files: a trained network saved as a .keras file, atomically and byte for byte the same
for the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from cnnzoo.files import atomic_path, rewrite_zip

KERAS_SAVE_DATE = "1980-01-01@00:00:00"
_FIRST_SHARED_ID = 10**14


def _stable_keras_member(name: str, data: bytes) -> bytes:
    """A .keras member without what changes from save to save of the same model: metadata's
    `date_saved`, and the config's `shared_object_id`s (Python object ids, new in every process),
    renumbered by first appearance: objects that share an id still share one."""
    if name == "metadata.json":
        meta = json.loads(data)
        if "date_saved" in meta:
            meta["date_saved"] = KERAS_SAVE_DATE
        return json.dumps(meta).encode()
    if name != "config.json":
        return data
    ids: dict[int, int] = {}

    def renumber(node):
        if isinstance(node, dict):
            return {k: ids.setdefault(v, _FIRST_SHARED_ID + len(ids)) if k == "shared_object_id"
                    else renumber(v) for k, v in node.items()}
        if isinstance(node, list):
            return [renumber(v) for v in node]
        return node

    return json.dumps(renumber(json.loads(data))).encode()


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save weights and architecture only, atomically and byte-reproducibly (the same weights
    give the same file, so DVC reruns nothing downstream of a retrain that changed nothing). An
    uncompiled functional view over the same layers drops the optimizer state (3× the weights
    for Adam), which no later stage reuses: each one compiles its own optimizer."""
    view = keras.Model(model.inputs, model.outputs, name=model.name)
    with atomic_path(path) as tmp:
        view.save(tmp)
        rewrite_zip(tmp, _stable_keras_member)
