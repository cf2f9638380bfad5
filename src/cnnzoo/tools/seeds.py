"""Seeds as an experiment (`make seeds`, `cnnzoo seeds N`): how much of a result is the seed's.

The task-B stages and the other pipelines' training and evaluation stages run again at N seeds
(base.seed, base.seed + 1, ...) as DVC experiments (`dvc exp show` lists them). Only those stages
run (`dvc exp run -s`): the data, its augmented copies, the scenes and (unless `pretrain=True`)
the task-A networks stay those of the params file's seed, so the spread is that of training on
the same data. reports/seeds.csv gets a row per result: mean, standard deviation, range and
the values. The params file's own seed runs first (nothing to do after `make run`) and again
last, so the workspace ends as `make run` left it.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

from cnnzoo import config
from cnnzoo.files import csv_text, read_json, write_text
from cnnzoo.tools.sweep import exp_runs

log = logging.getLogger(__name__)
CLASSIFY = ("transfer", "finetune", "scratch")
PIPELINES = {"segment": ("segment", "segment_evaluate"),
             "detect": ("detect", "detect_evaluate"),
             "verify": ("verify", "verify_pairs", "verify_evaluate")}
FIELDS = ("result", "seeds", "mean", "std", "min", "max", "values")


def stages(params: config.Params, pretrain: bool) -> list[str]:
    selected = params.pipelines.selected()
    return [*(["pretrain"] if pretrain else []), *CLASSIFY,
            *(s for p, group in PIPELINES.items() if p in selected for s in group)]


def results(metrics_dir: Path, archs: list[str], pipelines: list[str]) -> dict[str, float]:
    """One seed's numbers: per family fine-tuned, scratch and their gain (task-B test); the
    other pipelines' test headlines."""
    out: dict[str, float] = {}
    for arch in archs:
        fine = read_json(metrics_dir / "finetune" / f"{arch}.json")["test_accuracy"]
        scratch = read_json(metrics_dir / "scratch" / f"{arch}.json")["test_accuracy"]
        out.update({f"{arch} fine-tuned": fine, f"{arch} scratch": scratch,
                    f"{arch} transfer gain": fine - scratch})
    if "segment" in pipelines:
        out["segmentation mean IoU"] = read_json(metrics_dir / "segment" / "test.json")["mean_iou"]
    if "detect" in pipelines:
        out["detection mAP@0.5"] = read_json(metrics_dir / "detect" / "test.json")["map50"]
    if "verify" in pipelines:
        ver = read_json(metrics_dir / "verify" / "test.json")
        for method in ("triplet", "binary"):
            out[f"verification AUC ({method})"] = ver[method]["auc"]
            out[f"verification one-shot ({method})"] = ver[method]["one_shot_accuracy"]
        out["verification AUC (raw pixels)"] = ver["raw_pixels"]["auc"]
    return out


def table(per_seed: dict[int, dict[str, float]]) -> list[dict]:
    seeds = sorted(per_seed)
    rows = []
    for name in per_seed[seeds[0]]:
        values = [per_seed[s][name] for s in seeds]
        rows.append({"result": name, "seeds": " ".join(map(str, seeds)),
                     "mean": round(statistics.fmean(values), 4),
                     "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                     "min": round(min(values), 4), "max": round(max(values), 4),
                     "values": " ".join(f"{v:.4f}" for v in values)})
    return rows


def run_seeds(n: int, *, params_path: str = "params.yaml", metrics_dir: str = "metrics",
              csv_path: str = "reports/seeds.csv", pretrain: bool = False) -> list[dict]:
    if n < 2:
        raise ValueError(f"seeds: a spread needs at least 2 seeds, got {n}")
    params = config.load(params_path)
    first = params.base.seed
    order = [first + i for i in range(n)] + [first]
    per_seed: dict[int, dict[str, float]] = {}
    pipelines = params.pipelines.selected()

    def collect(setting: dict) -> None:
        seed = setting["base.seed"]
        if seed not in per_seed:
            per_seed[seed] = results(Path(metrics_dir), params.base.archs, pipelines)

    exp_runs([{"base.seed": s} for s in order], stages(params, pretrain), params_path=params_path,
             on_done=collect, single=True)
    rows = table(per_seed)
    write_text(csv_path, csv_text(rows, FIELDS))
    log.info("seeds -> %s\n%s", csv_path, "\n".join(
        f"{r['result']:<36} {r['mean']:.4f} ± {r['std']:.4f}  ({r['values']})" for r in rows))
    return rows
