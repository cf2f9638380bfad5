"""Which layer of which pretrained family makes the best verification embedding, untrained?

Every few layers of each `models/pretrain/<arch>.keras` (flattened, and globally pooled where
the layer is a map), L2-normalised, as the embedding of task A's validation images (classes
the network learnt) and task B's validation images (classes it never saw): the ROC AUC of all
pairs in each. Task B's *test* images are never read, so a choice made here stays honest.

    python -m cnnzoo.tools.layer_probe [--every 8] [arch ...]   (after `make run`)

prints, per family, its best layer for unseen classes next to its `features` layer, and the
rank correlation between the seen- and unseen-class AUC over every layer probed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_DIM = 20_000  # wider flattened maps are skipped: 2 million pair distances of each cost minutes


@dataclass(frozen=True)
class LayerScore:
    arch: str
    layer: str
    pooled: bool
    dim: int
    seen_auc: float
    unseen_auc: float


def _auc(emb: np.ndarray, y: np.ndarray) -> float:
    from cnnzoo.tasks import verification

    e = emb.reshape(len(emb), -1).astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-12
    return verification.roc_auc(verification.Pairs.from_matrix(verification.distance_similarity(e), y))


def probe(model, arch: str, seen: tuple[np.ndarray, np.ndarray],
          unseen: tuple[np.ndarray, np.ndarray], every: int = 8) -> list[LayerScore]:
    """Scores of every `every`-th spatial layer of `model` and its `features` layer."""
    import keras

    from cnnzoo.data.serving_input import to_unit
    from cnnzoo.models.registry import FEATURES

    maps = [lyr.name for lyr in model.layers if len(lyr.output.shape) == 4]
    names = list(dict.fromkeys(maps[::every] + [FEATURES]))
    extractor = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = [extractor.predict(to_unit(x), batch_size=256, verbose=0) for x, _ in (seen, unseen)]
    rows = []
    for k, name in enumerate(names):
        a, b = outs[0][k], outs[1][k]
        variants = [(False, a, b)] + ([(True, a.mean((1, 2)), b.mean((1, 2)))] if a.ndim == 4 else [])
        for pooled, ea, eb in variants:
            dim = int(np.prod(ea.shape[1:]))
            if dim > MAX_DIM or dim < 2:
                continue
            rows.append(LayerScore(arch, name, pooled, dim, _auc(ea, seen[1]), _auc(eb, unseen[1])))
    return rows


def rank_correlation(a: list[float], b: list[float]) -> float:
    """Spearman's rho (ranks' Pearson correlation; ties are rare among AUCs)."""
    ra, rb = (np.argsort(np.argsort(v)).astype(np.float64) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def table(rows: list[LayerScore]) -> str:
    """Markdown: per family, its best layer for unseen classes and its `features` layer."""
    from cnnzoo.models.registry import FEATURES

    lines = ["| family | best layer for unseen classes | AUC, unseen (task-B val) | "
             "AUC, seen (task-A val) | `features`: unseen | `features`: seen |",
             "|---|---|---:|---:|---:|---:|"]
    by_arch = {r.arch: [s for s in rows if s.arch == r.arch] for r in rows}
    for arch, rs in sorted(by_arch.items(), key=lambda kv: -max(r.unseen_auc for r in kv[1])):
        best = max(rs, key=lambda r: r.unseen_auc)
        feat = next(r for r in rs if r.layer == FEATURES)
        label = f"`{best.layer}`{', pooled' if best.pooled else ''} ({best.dim:,}-d)"
        lines.append(f"| {arch} | {label} | {best.unseen_auc:.4f} | {best.seen_auc:.4f} | "
                     f"{feat.unseen_auc:.4f} | {feat.seen_auc:.4f} |")
    rho = rank_correlation([r.seen_auc for r in rows], [r.unseen_auc for r in rows])
    lines.append(f"\n{len(rows)} layers and poolings; rank correlation of seen- and unseen-class "
                 f"AUC: {rho:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import keras

    import cnnzoo.models  # noqa: F401  (the project's layers, for load_model)
    from cnnzoo import logs
    from cnnzoo.data.datasets import load_split

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archs", nargs="*", help="default: every models/pretrain/*.keras")
    p.add_argument("--prepared", default="data/prepared")
    p.add_argument("--models", default="models/pretrain")
    p.add_argument("--every", type=int, default=8, help="probe every n-th spatial layer")
    p.add_argument("--seen-images", type=int, default=1000)
    args = p.parse_args(argv)
    logs.setup()
    files = [Path(args.models) / f"{a}.keras" for a in args.archs] or sorted(
        Path(args.models).glob("*.keras"))
    missing = [str(f) for f in files if not f.exists()]
    if missing or not files:
        sys.exit(f"no pretrained model at {', '.join(missing) or args.models}: run `make run` first")
    xa, ya = load_split(args.prepared, "a_val")
    seen = (xa[:args.seen_images], ya[:args.seen_images])
    unseen = load_split(args.prepared, "b_val")
    rows = []
    for f in files:
        log.info("probing %s", f.stem)
        rows += probe(keras.models.load_model(f), f.stem, seen, unseen, args.every)
    sys.stdout.write(table(rows) + "\n")


if __name__ == "__main__":
    main()
