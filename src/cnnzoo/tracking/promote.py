"""What ships: registered model `cnnzoo-mobile` and its `@mobile` alias, which phones and
`mlflow models serve` clients load, and the registered Keras models (`cnnzoo-<arch>`).

Two things add registered versions or move the alias, never an experiment on its own:
- the report of the committed default run: params.yaml as committed in git, outside `dvc exp run`
  (`make run` on a clone of the project);
- `cnnzoo promote <arch>` (`make promote ARCH=<arch>`): the export of `<arch>` in the workspace,
  e.g. after `dvc exp apply <experiment>`, on the user's word.

Every version says what it is: a description and tags with the architecture, the data (source,
digest, classes), the headline metrics, the git commit and the DVC experiment.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import yaml

from cnnzoo.files import read_json

log = logging.getLogger(__name__)
MOBILE_MODEL = "cnnzoo-mobile"
ALIAS = "mobile"


def not_the_committed_default(params_file: str | Path) -> str | None:
    """None when this run is the committed default (it may update what ships), else why not."""
    if name := os.environ.get("DVC_EXP_NAME"):  # set by DVC for every stage of `dvc exp run`
        return f"it is the DVC experiment {name}"
    path = Path(params_file)
    try:
        shown = subprocess.run(["git", "show", f"HEAD:./{path.as_posix()}"], capture_output=True,
                               text=True, timeout=30, cwd=path.resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return "git is not available to tell whether params.yaml is the committed one"
    if shown.returncode != 0:
        return f"{path} is not committed to git"
    if yaml.safe_load(shown.stdout) != yaml.safe_load(path.read_text()):
        return f"{path} differs from the committed one"
    return None


def may_register(name: str, params_file: str | Path = "params.yaml") -> str | None:
    """`name` when this run may add a version to registered model `name` (the committed
    default), else None after saying why in the log."""
    why = not_the_committed_default(params_file)
    if why is None:
        return name
    log.info("%s: no new registered version, %s (`cnnzoo promote` ships on request)", name, why)
    return None


def describe(what: str, arch: str, data: dict | None, classes: list[str],
             metrics: dict[str, float | int]) -> tuple[str, dict[str, str]]:
    """The description and tags of a registered version: what it is, its data (source and
    digest of the splits), classes, headline metrics, git commit and DVC experiment."""
    from cnnzoo.tracking.client import git_commit

    data = data or {"source": "unknown", "digest": "unknown"}
    shown = {k: str(round(v, 4)) for k, v in metrics.items()}
    tags = {"arch": arch, "data_source": data["source"], "data_digest": str(data["digest"]),
            "classes": ",".join(classes), **shown, "git_commit": git_commit() or "unknown",
            "dvc_experiment": os.environ.get("DVC_EXP_NAME", "workspace")}
    description = (f"{what}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown.items())
                   + f"; data {data['source']} (digest {data['digest']}); classes "
                   + ", ".join(classes) + ".")
    return description, tags


def version_tags(arch: str, export: Path, metrics_dir: Path) -> tuple[str, dict[str, str]]:
    """The description and tags of a registered version of `export` (exports/<arch>)."""
    card = read_json(export / "model.json")
    ev = read_json(metrics_dir / f"{arch}.json")
    ex = read_json(metrics_dir / "export" / f"{arch}.json")
    return describe(f"{arch}, int8 TFLite through LiteRT, input {card['input']['shape']}", arch,
                    ev.get("data"), card["classes"],
                    {"accuracy_int8": ex["int8"]["accuracy"], "accuracy_keras": ex["keras_accuracy"],
                     "int8_kb": round(ex["int8"]["size_bytes"] / 1024, 1),
                     "test_images": ex["test_images"]})


def register(run, arch: str, export: Path, metrics_dir: Path) -> str | None:
    """Log `export` in `run` as a pyfunc model, register it as a new version of MOBILE_MODEL
    with its description and tags, and point @mobile at it. Returns the version."""
    uri = run.log_tflite_model(export)
    if not uri:
        return None
    description, tags = version_tags(arch, export, metrics_dir)
    version = run.register(uri, MOBILE_MODEL, ALIAS, description=description, tags=tags)
    if version:
        log.info("registered %s as %s version %s, alias @%s (%s)", arch, MOBILE_MODEL, version,
                 ALIAS, tags["data_source"])
    return version


def promote(arch: str, *, params_file: str = "params.yaml", exports: str = "exports",
            metrics_dir: str = "metrics") -> str:
    """`cnnzoo promote <arch>`: ship the workspace's export of `arch`. Returns the version."""
    from cnnzoo import config
    from cnnzoo.tracking.client import stage_run

    params = config.load(params_file)
    folder = Path(exports) / arch
    if not (folder / "model.json").is_file() or not (Path(metrics_dir) / f"{arch}.json").is_file():
        raise FileNotFoundError(f"no export of {arch!r} in {folder} (exported: "
                                f"{', '.join(sorted(p.name for p in Path(exports).glob('*'))) or 'none'}"
                                "); run the pipeline first, or `dvc exp apply <experiment>`")
    with stage_run("promote", arch, experiment=params.base.experiment,
                   params={"arch": arch}) as run:
        version = register(run, arch, folder, Path(metrics_dir))
    if not version:
        raise RuntimeError(f"MLflow did not register {arch} (see the warning above)")
    return version
