"""What ships: registered model `cnnzoo-mobile` and its `@mobile` alias, which phones and
`mlflow models serve` clients load.

Two things move it, never an experiment on its own:
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


def version_tags(arch: str, export: Path, metrics_dir: Path) -> tuple[str, dict[str, str]]:
    """The description and tags of a registered version of `export` (exports/<arch>)."""
    from cnnzoo.tracking import git_commit

    card = read_json(export / "model.json")
    ev = read_json(metrics_dir / f"{arch}.json")
    ex = read_json(metrics_dir / "export" / f"{arch}.json")
    data = ev.get("data") or {"source": "unknown", "digest": "unknown"}
    tags = {"arch": arch, "data_source": data["source"], "data_digest": str(data["digest"]),
            "classes": ",".join(card["classes"]),
            "accuracy_keras": f"{ex['keras_accuracy']:.4f}",
            "accuracy_int8": f"{ex['int8']['accuracy']:.4f}",
            "int8_kb": f"{ex['int8']['size_bytes'] / 1024:.1f}",
            "test_images": str(ex["test_images"]),
            "git_commit": git_commit() or "unknown",
            "dvc_experiment": os.environ.get("DVC_EXP_NAME", "workspace")}
    description = (f"{arch}, int8 TFLite through LiteRT: test accuracy {tags['accuracy_int8']} "
                   f"(Keras {tags['accuracy_keras']}) on {tags['test_images']} images of "
                   f"{data['source']} (data digest {data['digest']}); classes "
                   f"{', '.join(card['classes'])}; input {card['input']['shape']}.")
    return description, tags


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
    from cnnzoo.tracking import stage_run

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
