"""The data pipeline's stages: download (prepared splits) and augment (augmented copies)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cnnzoo.config import Params
from cnnzoo.files import atomic_path, write_json
from cnnzoo.tracking.client import stage_run

log = logging.getLogger(__name__)


def download(params: Params, *, out: str, cache: str) -> None:
    from cnnzoo.data.prepare import prepare

    with stage_run("download", None, experiment=params.base.experiment,
                   params={"data": params.data.model_dump(), "seed": params.base.seed}) as run:
        meta = prepare(params.data, params.base.seed, out, cache)
        run.log_metrics({f"n_{k}": v for k, v in meta["counts"].items()})
        run.log_metrics({"skipped_files": meta["skipped"]})
        if meta["skipped"]:
            run.log_artifact(Path(out) / "skipped.txt")


def augment(params: Params, *, prepared: str, out: str, preview: str) -> None:
    """Resolve the policy, write the augmented training shards, render the preview grid."""
    from cnnzoo.data.augment import batch_mixer, build_augmenter, write_shards
    from cnnzoo.data.datasets import load_meta, load_split, to_float
    from cnnzoo.reporting.figures import augmentation_grid

    cfg, seed = params.augment, params.base.seed
    shape = tuple(load_meta(prepared)["image_shape"])
    with stage_run("augment", None, experiment=params.base.experiment,
                   params={"augment": cfg.model_dump()}) as run:
        with atomic_path(out) as tmp:
            tmp.mkdir()
            write_json(tmp / "policy.json", {**cfg.model_dump(), "seed": seed})
            for split in ("a_train", "b_train"):
                write_shards(*load_split(prepared, split), cfg, seed, tmp, split)
        x, y = load_split(prepared, "a_train")
        originals = to_float(x[: cfg.preview_samples]).numpy()
        augmenter = build_augmenter(cfg, seed, shape)
        rows = [augmenter(originals, training=True).numpy() for _ in range(3)] if augmenter else []
        labels = [f"aug {i}" for i in range(1, len(rows) + 1)]
        mixer = batch_mixer(cfg)
        if mixer is not None:
            onehot = np.eye(int(y.max()) + 1, dtype=np.float32)[y[: cfg.preview_samples]]
            rows.append(mixer(originals, onehot, np.array([seed, 0]))[0].numpy())
            labels.append("mixup/CutMix")
        augmentation_grid(originals, rows, preview, title="augmentation preview",
                          row_labels=labels)
        run.log_artifact(preview)
    log.info("augmentation: %d cop%s per training set -> %s, preview -> %s", cfg.copies,
             "y" if cfg.copies == 1 else "ies", out, preview)
