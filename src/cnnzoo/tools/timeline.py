"""The last `cnnzoo run` (`make run`) split by stage, for `cnnzoo bench`: where its wall time went.

`cnnzoo run` saves `.cache/last-run.json`: its wall time and, per stage that ran, three clock
readings taken by `run_stage` (entered, began its own work, ended). DVC runs the stages one at a
time, so the time from one stage's end to the next one's start of work is that stage's fixed
cost: DVC's bookkeeping (hashing dependencies, caching the previous stage's outputs), starting
the stage's process (forked from the warm launcher, cnnzoo/tools/warm.py) and loading params. Loading
data or a model inside a stage counts as its work.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from cnnzoo.files import read_json


def split(path: str | Path) -> dict | None:
    """Per stage group (`pretrain@lenet5` -> `pretrain`): stages, work and fixed seconds; None
    without a saved run."""
    path = Path(path)
    if not path.is_file():
        return None
    run = read_json(path)
    stages = sorted(run["stages"], key=lambda s: s["entered"])
    groups: dict[str, dict] = {}
    previous_end = run["started"]
    for s in stages:
        g = groups.setdefault(s["stage"].split("@")[0], {"stages": 0, "work_s": 0.0,
                                                         "fixed_s": []})
        g["stages"] += 1
        g["work_s"] += s["ended"] - s["began"]
        g["fixed_s"].append(s["began"] - previous_end)
        previous_end = s["ended"]
    fixed = [f for g in groups.values() for f in g["fixed_s"]]
    return {"when": time.strftime("%Y-%m-%d %H:%M", time.localtime(run["started"])),
            "wall_s": run["wall_s"], "returncode": run["returncode"], "stages": len(stages),
            "work_s": sum(g["work_s"] for g in groups.values()), "fixed_s": sum(fixed),
            "fixed_median_s": statistics.median(fixed) if fixed else 0.0,
            "after_last_s": run["started"] + run["wall_s"] - previous_end,
            "groups": {name: {**g, "fixed_s": sum(g["fixed_s"])} for name, g in groups.items()}}


def table(s: dict | None) -> str:
    if s is None:
        return "No `make run` timeline here yet (`make run` saves .cache/last-run.json)."
    wall = s["wall_s"]
    lines = [f"Last `make run` ({s['when']}, exit {s['returncode']}): {wall / 60:.1f} min wall, "
             f"{s['stages']} stages run; their own work {s['work_s'] / wall:.0%}, fixed cost "
             f"{s['fixed_s'] / wall:.0%} ({s['fixed_s']:.0f} s, median {s['fixed_median_s']:.1f}"
             f" s per stage: DVC's bookkeeping, process start, params), after the last stage "
             f"{s['after_last_s']:.0f} s.", "",
             "| stage | runs | work s | fixed s | share of wall |", "|---|---|---|---|---|"]
    for name, g in sorted(s["groups"].items(), key=lambda kv: -kv[1]["work_s"] - kv[1]["fixed_s"]):
        lines.append(f"| {name} | {g['stages']} | {g['work_s']:.0f} | {g['fixed_s']:.0f} | "
                     f"{(g['work_s'] + g['fixed_s']) / wall:.0%} |")
    return "\n".join(lines)
