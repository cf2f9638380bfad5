"""`cnnzoo run` (what `make run` calls): `dvc repro`, then the results where the user looks.

On success it prints the leaderboard itself, the pipeline's wall time and how to browse the runs.
On failure its last line names the stage that failed and the one-line cause, so nobody has to
scroll back through TensorFlow's output to find it. Stages report to it through a small JSON file
whose path travels in `$CNNZOO_FAILURE_FILE` (DVC passes the environment on to stage commands):
a stage writes its name when it starts, removes the file when it succeeds and adds the cause
when it fails; a file left without a cause means the process died without a Python error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from cnnzoo.files import read_csv, read_json, write_json
from cnnzoo.progress import FAILURE_ENV, TIMES_ENV, UNTRACKED_ENV
from cnnzoo.tools import warm
from cnnzoo.training import backups

# The last `cnnzoo run`'s timeline (`cnnzoo bench` splits its wall time by stage).
LAST_RUN = Path(".cache") / "last-run.json"
# What `cnnzoo run` reproduces without targets: the report and every stage it needs, which is
# all of dvc.yaml but the slow, cached `sizes` stage (`make sizes`; a plain `dvc repro` runs it).
DEFAULT_TARGETS = ("report",)


@dataclass
class Outcome:
    returncode: int
    seconds: float
    summary: str  # what to print last: the results, or which stage failed and why


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def leaderboard_csv(root: Path) -> Path | None:
    """The CSV output of dvc.yaml's `report` stage (paths are written once, in dvc.yaml)."""
    try:
        outs = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["report"]["outs"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    for out in outs:
        name = next(iter(out)) if isinstance(out, dict) else out
        if str(name).endswith(".csv"):
            return root / name
    return None


def _summary_ok(root: Path, seconds: float, started: float) -> str:
    from cnnzoo.reporting.leaderboard import headlines, to_text

    lines = []
    board = leaderboard_csv(root)
    if board and board.is_file():
        rows = read_csv(board)
        fresh = "" if board.stat().st_mtime >= started else " (unchanged: nothing to rerun)"
        lines += [f"Leaderboard on the task-B test split{fresh} ({board.relative_to(root)}, "
                  "Markdown beside it):", to_text(rows), ""]
        extra = headlines(root / "metrics", listed_pipelines(root))  # report's --metrics-dir
        lines += [*extra, ""] if extra else []
    lines += [f"Pipeline finished in {format_duration(seconds)}.",
              f"Browse every run, metric, plot and model in MLflow: make ui  ({ui_url(root)});"
              " from the shell: dvc metrics show"]
    return "\n".join(lines)


def listed_pipelines(root: Path) -> list[str]:
    """The pipelines params.yaml lists (validating it needs no TensorFlow: cnnzoo/config/catalogue.py)."""
    from cnnzoo import config

    try:
        return config.load(root / "params.yaml").pipelines.selected()
    except config.ConfigError:
        return ["classify"]


def ui_url(root: Path, base: str = "http://127.0.0.1:5000") -> str:
    """Where `make ui` shows this project's runs: the experiment's runs table in MLflow's
    model-training view (the UI opens in its GenAI view unless the URL asks), when the default
    SQLite store names the experiment; else the UI's home page."""
    import sqlite3

    # cnnzoo.tracking.client.tracking_uri's rule, without importing Keras into this process.
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root.resolve() / 'mlflow.db'}"
    db = Path(uri.removeprefix("sqlite:///"))
    try:
        name = yaml.safe_load((root / "params.yaml").read_text())["base"].get("experiment", "cnnzoo")
        if not uri.startswith("sqlite:///") or not db.is_file():
            return base
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT experiment_id FROM experiments WHERE name = ?",
                               (name,)).fetchone()
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError, sqlite3.Error):
        return base
    return f"{base}/#/experiments/{row[0]}/runs?workflowType=machine_learning" if row else base


def _summary_failed(failure: Path, returncode: int, seconds: float) -> str:
    took = format_duration(seconds)
    info = read_json(failure) if failure.is_file() else None
    if info is None:
        return (f"cnnzoo: pipeline FAILED after {took} (dvc repro exit code {returncode}) outside "
                "any stage's code: see DVC's ERROR line above")
    cause = info.get("cause") or ("the process ended without a Python error (killed, e.g. out "
                                  "of memory?)")
    return f"cnnzoo: pipeline FAILED at stage '{info['stage']}' after {took}: {cause}"


def run_pipeline(dvc_args: list[str], root: str | Path = ".", summary: bool = True,
                 timeline: bool = False) -> Outcome:
    """Run `dvc repro *dvc_args` in `root` with this interpreter's environment on PATH (so the
    stages' `python` is the one cnnzoo is installed in, activated venv or not), its stages forked
    from a warm launcher that has already imported TensorFlow (cnnzoo/tools/warm.py). `timeline`
    saves the run's stage times as `LAST_RUN` (`cnnzoo run` does; `make sizes` does not)."""
    root = Path(root).resolve()
    bin_dir = str(Path(sys.executable).parent)
    with tempfile.TemporaryDirectory(prefix="cnnzoo-run-") as tmp:
        failure, untracked = Path(tmp) / "failure.json", Path(tmp) / "untracked.txt"
        times = Path(tmp) / "times.jsonl"
        env = {**os.environ, FAILURE_ENV: str(failure), UNTRACKED_ENV: str(untracked),
               TIMES_ENV: str(times), "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        wall, start = time.time(), time.monotonic()
        with warm.launcher(tmp) as warm_env:
            env.update(warm_env)
            proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", *dvc_args], cwd=root,
                                    env=env)
            try:
                returncode = proc.wait()
            except KeyboardInterrupt:  # Ctrl-C reached DVC too: let it stop its stage cleanly
                returncode = proc.wait()
        # Stages DVC restored from its run cache ran none of our code: their backups go here.
        backups.prune_committed(root)
        seconds = time.monotonic() - start
        if timeline:
            _save_timeline(root / LAST_RUN, times, dvc_args, wall, seconds, returncode)
        missing = _untracked_line(untracked)
        if returncode == 0:
            text = _summary_ok(root, seconds, wall) if summary else ""
            return Outcome(0, seconds, "\n".join(filter(None, [missing, text])))
        return Outcome(returncode, seconds,
                       "\n".join(filter(None, [missing, _summary_failed(failure, returncode,
                                                                         seconds)])))


def _save_timeline(path: Path, times: Path, dvc_args: list[str], started: float,
                   seconds: float, returncode: int) -> None:
    stages = [json.loads(line) for line in times.read_text().splitlines()] if times.is_file() \
        else []
    if not stages:  # nothing reran: the last measured run stays
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"dvc_args": dvc_args, "started": started, "wall_s": seconds,
                      "returncode": returncode, "stages": stages})


def _untracked_line(path: Path) -> str:
    """Which runs MLflow did not record (server down or failing), named by the stages."""
    names = list(dict.fromkeys(path.read_text().split())) if path.is_file() else []
    if not names:
        return ""
    return (f"MLflow did not record {len(names)} run(s): {', '.join(names)} (their DVC outputs "
            "are complete; the warnings above say why)")
