"""The stages' MLflow client: every run, metric, artifact and registered version goes through it.
Elsewhere MLflow is only read: `cnnzoo run`'s summary (tools/runner.py) and `make docs-images`
look run ids up in the SQLite store, and the registered model's own code (litert_pyfunc.py) is
loaded by MLflow.

One experiment; one run per (stage, arch), tagged with stage, arch and git commit. The store
defaults to `sqlite:///<project root>/mlflow.db` (overridable with MLFLOW_TRACKING_URI). A
tracking failure is logged as a warning and disables tracking for the rest of the run: it must
never kill training or lose the DVC outputs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import numbers
import os
import subprocess
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cnnzoo.logs import native_output
from cnnzoo.progress import UNTRACKED_ENV  # `cnnzoo run` lists these runs in its summary

log = logging.getLogger(__name__)

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def tracking_uri(root: str | Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(Path(root) if root else Path.cwd()).resolve() / 'mlflow.db'}"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def not_tracked(run_name: str, why: str) -> None:
    """Say that run `run_name` is (partly) missing from MLflow and why, and tell `cnnzoo run`."""
    log.warning("MLflow run %s not tracked: %s (the stage's DVC outputs are written as usual)",
                run_name, why)
    if path := os.environ.get(UNTRACKED_ENV):
        with contextlib.suppress(OSError), open(path, "a") as f:
            f.write(run_name + "\n")


def _server_problem(uri: str) -> str | None:
    """Why the tracking server at an http(s) `uri` cannot take runs, or None when it answers.
    Checked once per stage: MLflow's client would otherwise retry each call for minutes."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as resp:
            return None if resp.status == 200 else f"/health answered HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as err:
        return f"server {uri} unreachable ({getattr(err, 'reason', err)})"


def is_chief() -> bool:
    """Whether this process records the stage: yes, but in a multi-worker cluster (TF_CONFIG)
    only its chief (task `chief`, or worker 0 when there is none), so that N workers training one
    model make one MLflow run, not N."""
    try:
        cfg = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task = cfg.get("task") or {}
    except (ValueError, AttributeError):
        return True  # a malformed TF_CONFIG fails in TensorFlow, with its own message
    kind = task.get("type", "worker")
    if "chief" in (cfg.get("cluster") or {}):
        return kind == "chief"
    return kind == "worker" and int(task.get("index", 0)) == 0


def metric_values(metrics: Mapping) -> dict[str, float]:
    """What MLflow gets of a stage's results: its finite numbers (numpy's too), and a 95% interval
    (a `*_ci` [low, high] pair) as `*_ci_low` and `*_ci_high`; anything else (names, per-class
    dicts, per-item bits) stays in the JSON."""
    values = {}
    for k, v in metrics.items():
        if k.endswith("_ci") and isinstance(v, list | tuple) and len(v) == 2:
            values.update({f"{k}_low": v[0], f"{k}_high": v[1]})
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            values[k] = v
    return {k: float(v) for k, v in values.items() if np.isfinite(float(v))}


class Run:
    """A guarded handle on one MLflow run: every call degrades to a warning on failure."""

    def __init__(self, active: bool, name: str = "run", run_id: str | None = None):
        self.active = active
        self.name = name  # "<stage>-<arch>", as the run is named in the UI
        self.run_id = run_id

    def _guard(self, what: str, fn, *args, **kwargs):
        if not self.active:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 — any tracking failure must stay non-fatal
            not_tracked(self.name, f"{what} failed ({type(err).__name__}: {err}); tracking "
                        "disabled for the rest of this stage")
            self.active = False
            return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        flat = {k: str(v)[:500] for k, v in flatten(params).items()}
        self._guard("log_params", mlflow.log_params, flat)

    def log_metrics(self, metrics: Mapping, step: int | None = None) -> None:
        import mlflow

        self._guard("log_metrics", mlflow.log_metrics, metric_values(metrics), step=step)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        import mlflow

        self._guard("log_artifact", mlflow.log_artifact, str(path), artifact_path=folder)

    def log_dataset(self, x: np.ndarray, y: np.ndarray, *, name: str, source: str,
                    context: str) -> None:
        """The arrays a stage trains or evaluates on as an MLflow input (the runs table's Dataset
        column): `name`, a digest of the data (runs on other data are told apart), `source` and
        the split as `context` (train / validation / test)."""
        import warnings

        import mlflow

        def _log():
            with warnings.catch_warnings():  # "source can be interpreted in multiple ways"
                warnings.simplefilter("ignore", UserWarning)
                ds = mlflow.data.from_numpy(x, targets=y, source=str(source), name=name)
            mlflow.log_input(ds, context=context)

        self._guard("log_dataset", _log)

    def log_keras_model(self, model: keras.Model, x_sample: np.ndarray) -> str | None:
        """Keras flavour with a signature (mlflow.keras 3.17 breaks on input_example=); returns
        its model URI (`register` adds it to the registry)."""
        import mlflow
        from mlflow.models import infer_signature

        def _log():
            y = model.predict(x_sample, verbose=0)
            # Pinned requirements skip MLflow's slow requirement inference (it reloads the model).
            reqs = [f"{p}=={metadata.version(p)}" for p in ("keras", _tf_dist())]
            return mlflow.keras.log_model(model, name="model", signature=infer_signature(x_sample, y),
                                          pip_requirements=reqs).model_uri

        return self._guard("log_model", _log)

    def log_tflite_model(self, folder: str | Path, code: str, carried: list[str]) -> str | None:
        """An export folder (.tflite files, model.json, labels.txt) as a pyfunc model from code:
        the file `code` (cnnzoo/deploy/litert_pyfunc.py runs the int8 file through LiteRT),
        which imports the `carried` files beside it. Returns its model URI."""
        import mlflow

        folder = Path(folder)
        card = json.loads((folder / "model.json").read_text())
        artifacts = {v: str(folder / info["file"]) for v, info in card["variants"].items()}
        artifacts.update({"model.json": str(folder / "model.json"),
                          "labels.txt": str(folder / "labels.txt")})
        reqs = [f"{p}=={metadata.version(p)}" for p in ("ai-edge-litert", "numpy", "pandas")]

        def _log():
            # No signature: MLflow would enforce one input shape and dtype before the model's
            # own pre-processing (serving_input.py) could take images of any size and type.
            # pyfunc logging copies the artifacts with a progress bar per file: not for a log.
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            # MLflow runs the input example through LiteRT, whose C++ side announces XNNPACK.
            with native_output("LiteRT interpreter (MLflow's input example)"):
                return mlflow.pyfunc.log_model(
                    name="mobile", python_model=code,
                    artifacts=artifacts, pip_requirements=reqs, signature=False,
                    code_paths=carried,
                    input_example=np.zeros((1, *card["input"]["shape"]), np.float32)).model_uri

        return self._guard("log_tflite_model", _log)

    def register(self, model_uri: str, name: str, alias: str | None = None, *,
                 description: str = "", tags: Mapping[str, str] | None = None) -> str | None:
        """A new version of registered model `name` from `model_uri`, with its description and
        tags, given `alias` if any."""
        import mlflow

        def _register():
            version = mlflow.register_model(model_uri, name, tags=dict(tags or {})).version
            client = mlflow.MlflowClient()
            if description:
                client.update_model_version(name, version, description=description)
            if alias:
                client.set_registered_model_alias(name, alias, version)
            return str(version)

        return self._guard("register", _register)

    def epoch_callback(self) -> keras.callbacks.Callback:
        run = self

        class _EpochMetrics(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                run.log_metrics(logs or {}, step=epoch)

        return _EpochMetrics()


@functools.cache
def _tf_dist() -> str:
    for dist in ("tensorflow-cpu", "tensorflow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            metadata.version(dist)
            return dist
    return "tensorflow"


def _experiment_id(name: str, root: Path) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        # Keep artifacts beside the embedded store rather than in a cwd-relative ./mlruns.
        location = None
        if "MLFLOW_TRACKING_URI" not in os.environ:
            location = (root / "mlartifacts").resolve().as_uri()
        return mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    return exp.experiment_id


@contextlib.contextmanager
def stage_run(stage: str, arch: str | None, *, experiment: str, params: Mapping[str, Any],
              tags: Mapping[str, str] | None = None,
              root: str | Path | None = None) -> Iterator[Run]:
    """Open the MLflow run for one (stage, arch); yields a `Run` (inactive if MLflow fails).
    `tags` (e.g. transfer strategy, weights source, label budget) are added to the run's tags
    and params, so the UI can both filter and compare by them."""
    root = Path(root) if root else Path.cwd()
    run_name = f"{stage}-{arch}" if arch else stage
    if not is_chief():
        log.info("%s: MLflow run left to the chief worker (TF_CONFIG)", run_name)
        yield Run(active=False, name=run_name)
        return
    uri = tracking_uri(root)
    if uri.startswith(("http://", "https://")):
        # A server that dies mid-stage costs a few seconds per call, not MLflow's minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
        if problem := _server_problem(uri):
            not_tracked(run_name, problem)
            yield Run(active=False, name=run_name)
            return
    try:
        import mlflow

        mlflow.set_tracking_uri(uri)
        exp_id = _experiment_id(experiment, root)
        tags = {"stage": stage, "arch": arch or "all", "git_commit": git_commit(), **(tags or {})}
        ctx = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags)
        ctx.__enter__()
    except Exception as err:  # noqa: BLE001
        not_tracked(run_name, f"MLflow unavailable ({type(err).__name__}: {err})")
        yield Run(active=False, name=run_name)
        return
    run = Run(active=True, name=run_name, run_id=ctx.info.run_id)
    run.log_params({**params, **{f"tag.{k}": v for k, v in tags.items()
                                 if k not in ("stage", "arch", "git_commit")}})
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        with contextlib.suppress(Exception):
            mlflow.end_run(status=status)
