"""When a run may add registered versions (`cnnzoo-mobile@mobile`, which phones and `mlflow models
serve` clients load, and the Keras models `cnnzoo-<arch>`), and what every version says.

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

log = logging.getLogger(__name__)


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
