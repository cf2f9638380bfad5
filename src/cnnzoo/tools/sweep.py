"""Label sweep (`make sweep`): the pipeline at several task-B label budgets, as DVC experiments.

For each budget, `dvc exp run -S data.labels_per_class=N transfer finetune scratch export`
reruns only task B's stages: download, augment and pretrain do not read that key, so they are
reused. The test accuracies of scratch, linear probe, fine-tuned transfer and its int8 TFLite
file are collected after each run: how many labels until the phone model is good enough. The
other budgets run with `export.enforce_gate=false`, so an int8 file past the parity gate is
measured and marked, not a failed sweep.
The params file's own budget runs first (nothing to do after `make run`) and again last, so the
workspace ends as `make run` left it (`restore=False` skips that last pass); the params file is
restored byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from cnnzoo import config
from cnnzoo.files import csv_text, read_json, write_text
from cnnzoo.tools import warm

log = logging.getLogger(__name__)
STAGES = ("transfer", "finetune", "scratch", "export")
TRAINED = STAGES[:3]
FIELDS = ("labels_per_class", "arch", "scratch", "linear_probe", "fine_tuned", "gain", "int8")
COLUMN = {"transfer": "linear_probe", "finetune": "fine_tuned", "scratch": "scratch"}
# Every accuracy's 95% bootstrap interval, and the gain's paired one (same test images).
BOUNDS = (*(f"{k}_{end}" for k in FIELDS[2:] for end in ("low", "high")), "int8_drop",
          "int8_gate")


def collect(archs: list[str], metrics_dir: Path, labels_per_class: int) -> list[dict]:
    """This budget's row per architecture, from the B stages' metrics."""
    from cnnzoo.tasks.intervals import paired_interval, unpack

    rows = []
    for arch in archs:
        runs = {s: read_json(metrics_dir / s / f"{arch}.json") for s in TRAINED}
        acc = {s: r["test_accuracy"] for s, r in runs.items()}
        row = {"labels_per_class": labels_per_class, "arch": arch,
               "scratch": round(acc["scratch"], 4),
               "linear_probe": round(acc["transfer"], 4),
               "fine_tuned": round(acc["finetune"], 4),
               "gain": round(acc["finetune"] - acc["scratch"], 4)}
        bounds = {COLUMN[s]: r["test_accuracy_ci"] for s, r in runs.items() if "test_accuracy_ci" in r}
        if all("test_accuracy_correct" in runs[s] for s in ("finetune", "scratch")):
            bounds["gain"] = paired_interval(unpack(runs["finetune"]["test_accuracy_correct"]),
                                             unpack(runs["scratch"]["test_accuracy_correct"]))
        export = metrics_dir / "export" / f"{arch}.json"
        if export.is_file():  # the int8 file of this budget's fine-tuned model
            int8 = read_json(export)["int8"]
            row.update(int8=round(int8["accuracy"], 4), int8_drop=round(int8["drop"], 4),
                       int8_gate="fail" if read_json(export).get("gate_failures") else "pass")
            if "accuracy_ci" in int8:
                bounds["int8"] = int8["accuracy_ci"]
        for key, (low, high) in bounds.items():
            row.update({f"{key}_low": round(low, 4), f"{key}_high": round(high, 4)})
        rows.append(row)
    return rows


def to_csv(rows: list[dict]) -> str:
    return csv_text(rows, FIELDS + BOUNDS)


def summary(rows: list[dict]) -> str:
    """One line per budget: mean accuracies and how many families transfer beats scratch for."""
    lines = []
    for n in sorted({r["labels_per_class"] for r in rows}):
        sel = [r for r in rows if r["labels_per_class"] == n]
        mean = {k: sum(r[k] for r in sel) / len(sel) for k in FIELDS[2:5]}
        wins = sum(r["fine_tuned"] > r["scratch"] for r in sel)
        sure = sum(r.get("gain_low", 0) > 0 for r in sel)
        int8 = ""
        if all("int8" in r for r in sel):
            passed = sum(r["int8_gate"] == "pass" for r in sel)
            int8 = (f", int8 TFLite {sum(r['int8'] for r in sel) / len(sel):.4f} "
                    f"({passed}/{len(sel)} within the parity gate)")
        lines.append(f"{n:>5} labels/class: scratch {mean['scratch']:.4f}, linear probe "
                     f"{mean['linear_probe']:.4f}, fine-tuned {mean['fine_tuned']:.4f}{int8}; "
                     f"transfer beats scratch for {wins}/{len(sel)} ({sure} with the paired "
                     "95% interval above zero)")
    return "\n".join(lines)


def exp_runs(settings: list[dict], stages: list[str], *, params_path: str,
             on_done: Callable[[dict], None], single: bool = False) -> None:
    """`dvc exp run -S key=value ... STAGES` once per entry of `settings` (each a {key: value}
    dict), calling `on_done(setting)` after each while its results are in the workspace. Every
    setting is validated before the first one trains; the params file is restored byte for byte
    afterwards, even on failure. `single`: only STAGES, not the stages they depend on (`-s`)."""
    params_file = Path(params_path)
    original = params_file.read_text()
    raw = yaml.safe_load(original)
    for setting in settings:
        changed = {**raw}
        for key, value in setting.items():
            section, name = key.split(".")
            changed[section] = {**raw.get(section, {}), name: value}
        config.parse(changed, f"{params_path} with " + ", ".join(f"{k}={v}" for k, v in setting.items()))
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cnnzoo-exp-"))
        # As in `cnnzoo run`: stages forked warm, and their `python` is this environment's,
        # activated or not (a bare `.venv/bin/cnnzoo sweep` would run them with the system's).
        env = {**os.environ, **stack.enter_context(warm.launcher(tmp)),
               "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
        stack.callback(params_file.write_text, original)
        for setting in settings:
            log.info("dvc exp run %s", " ".join(f"-S {k}={v}" for k, v in setting.items()))
            cmd = [sys.executable, "-m", "dvc", "exp", "run",
                   *(a for k, v in setting.items() for a in ("-S", f"{k}={v}")),
                   *(["-s"] if single else []), *stages]
            if subprocess.run(cmd, env=env).returncode != 0:
                raise RuntimeError(f"`{' '.join(cmd[2:])}` failed (its output is above)")
            on_done(setting)


def budget_settings(order: list[int], default: int, enforce_gate: bool) -> list[dict]:
    """`dvc exp run -S` settings per budget. The default budget as `make run` left it (the params
    file's own gate: its export is DVC's cached one); the others record an int8 file past the
    gate instead of stopping the sweep. Every setting names the gate: an experiment starts from
    the one before it, so a default budget after another one would otherwise keep its
    `enforce_gate=false`, rerun every export and leave them out of date with params.yaml."""
    return [{"data.labels_per_class": n,
             "export.enforce_gate": enforce_gate if n == default else False} for n in order]


def run_sweep(labels: list[int], *, params_path: str = "params.yaml",
              metrics_dir: str = "metrics", csv_path: str = "reports/sweep.csv",
              plot_path: str = "plots/sweep.png", restore: bool = True) -> list[dict]:
    from cnnzoo.reporting.figures import label_sweep_plot

    params = config.load(params_path)
    default = params.data.labels_per_class
    order = ([default] if default in labels else []) + [n for n in labels if n != default]
    if restore and order[-1] != default:
        order.append(default)
    rows: list[dict] = []
    done: set[int] = set()

    def collect_budget(setting: dict) -> None:
        n = setting["data.labels_per_class"]
        if n in labels and n not in done:
            rows.extend(collect(params.base.archs, Path(metrics_dir), n))
            done.add(n)

    exp_runs(budget_settings(order, default, params.export.enforce_gate), list(STAGES),
             params_path=params_path, on_done=collect_budget)
    rows.sort(key=lambda r: (r["labels_per_class"], params.base.archs.index(r["arch"])))
    write_text(csv_path, to_csv(rows))
    label_sweep_plot(rows, plot_path)
    log.info("sweep -> %s, %s\n%s", csv_path, plot_path, summary(rows))
    return rows
