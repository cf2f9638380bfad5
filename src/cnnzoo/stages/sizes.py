"""The deployment-size pipeline: one slow, cached stage (cnnzoo.deploy.sizes), off `make run`'s
path."""

from __future__ import annotations

import logging

from cnnzoo.config import Params
from cnnzoo.tracking.client import stage_run

log = logging.getLogger(__name__)


def sizes(params: Params, *, csv: str, md: str, plot: str) -> None:
    """The canonical deployment-size table (`cnnzoo.deploy.sizes`) and its plot, logged to MLflow."""
    from cnnzoo.deploy.sizes import measure_all
    from cnnzoo.reporting.figures import sizes_plot
    from cnnzoo.reporting.sizes_table import to_text, write

    with stage_run("sizes", None, experiment=params.base.experiment,
                   params={"sizes": params.sizes.model_dump()}) as run:  # spans the work
        rows = measure_all(params.sizes)
        write(rows, csv, md)
        sizes_plot(rows, plot)
        run.log_metrics({f"{r['model']}_{k}": r[k] for r in rows
                         for k in ("params", "keras_mb", "float32_mb", "float16_mb", "int8_mb")})
        run.log_artifact(csv)
        run.log_artifact(md)
        run.log_artifact(plot)
    log.info("sizes -> %s\n%s", md, to_text(rows))
