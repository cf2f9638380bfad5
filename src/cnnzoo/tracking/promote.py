"""What ships: registered model `cnnzoo-mobile` and its `@mobile` alias, which phones and
`mlflow models serve` clients load. Only the committed default run's report and `cnnzoo promote
<arch>` (`make promote ARCH=<arch>`) move it; the rules are tracking/registration.py's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cnnzoo.files import read_json
from cnnzoo.tracking.registration import describe

log = logging.getLogger(__name__)
MOBILE_MODEL = "cnnzoo-mobile"
ALIAS = "mobile"


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


def log_mobile_model(run, export: Path) -> str | None:
    """`export` in `run` as the pyfunc model that serves it: litert_pyfunc.py, carrying the one
    pre-processing (serving_input.py). Returns its model URI."""
    from cnnzoo.data import serving_input
    from cnnzoo.deploy import litert_pyfunc

    return run.log_tflite_model(export, code=litert_pyfunc.__file__,
                                carried=[serving_input.__file__])


def register(run, arch: str, export: Path, metrics_dir: Path) -> str | None:
    """Log `export` in `run` as a pyfunc model, register it as a new version of MOBILE_MODEL
    with its description and tags, and point @mobile at it. Returns the version."""
    uri = log_mobile_model(run, export)
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
