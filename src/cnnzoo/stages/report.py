"""The pipeline's sink: the leaderboard, the mobile pick and the sections of the other pipelines."""

from __future__ import annotations

import logging
from pathlib import Path

from cnnzoo.config import Params
from cnnzoo.files import write_json
from cnnzoo.stages.common import experiment_tags
from cnnzoo.tracking.client import stage_run

log = logging.getLogger(__name__)


def report(params: Params, *, metrics_dir: str, exports: str, md: str, csv: str, figure: str,
           sizes_csv: str, headline: str, export_plots: str, robustness_csv: str,
           params_file: str = "params.yaml") -> None:
    """The leaderboard (table and figure), the mobile-export table, where int8 loses, a section
    per pipeline that `pipelines` lists (each naming its data), the canonical deployment sizes
    once `make sizes` has run, mean corruption accuracy once `make robustness` has, and
    reports/headline.json. Registers the pick as `cnnzoo-mobile@mobile` only when this is the
    committed default run (cnnzoo/tracking/registration.py): an experiment never moves it."""
    from cnnzoo.reporting import leaderboard
    from cnnzoo.reporting.insight_figures import leaderboard_figure
    from cnnzoo.reporting.quantization import int8_markdown
    from cnnzoo.reporting.robustness_table import for_report, mca_columns, robustness_markdown
    from cnnzoo.tracking import promote, registration

    archs, metrics = params.base.archs, Path(metrics_dir)
    pipelines = params.pipelines.selected()
    rows = leaderboard.collect(archs, metrics)
    robust = for_report(Path(robustness_csv), Path(exports))
    mca_columns(rows, robust)
    pick = leaderboard.pick_mobile(archs, metrics, params.export.max_drop)
    reference = leaderboard.classifier_data(archs, metrics)
    why_not = registration.not_the_committed_default(params_file)
    with stage_run("report", None, experiment=params.base.experiment,
                   params={"archs": archs, "pipelines": pipelines},
                   tags=experiment_tags(params)) as run:
        version = None
        if why_not is None:
            version = promote.register(run, pick, Path(exports) / pick, metrics)
        else:
            # The export folder on disk, logged here: the very files this report ranks.
            promote.log_mobile_model(run, Path(exports) / pick)
            log.info("%s not registered: %s (@%s stays where it is; `cnnzoo promote %s` ships "
                     "this one)", pick, why_not, promote.ALIAS, pick)
        leaderboard_figure(rows, figure, "cnnzoo leaderboard: which network to ship")
        sections = {"segment": leaderboard.segmentation_markdown,
                    "detect": leaderboard.detection_markdown,
                    "verify": leaderboard.verification_markdown}
        mobile = leaderboard.mobile_markdown(leaderboard.mobile_rows(archs, metrics), pick, version)
        leaderboard.write_report(
            rows, Path(md), Path(csv), title="cnnzoo leaderboard (task B test split)",
            sections=(leaderboard.data_line(reference),
                      leaderboard.figure_markdown(Path(figure), Path(md)), mobile,
                      int8_markdown(archs, metrics, Path(export_plots), Path(md)),
                      robustness_markdown(robust, archs),
                      *(sections[p](metrics, reference) for p in pipelines if p in sections),
                      leaderboard.sizes_markdown(Path(sizes_csv))))
        write_json(headline, leaderboard.headline(rows, metrics, pipelines))
        run.log_artifact(md)
        run.log_artifact(csv)
        run.log_artifact(figure)
    log.info("report -> %s, %s, %s", md, figure, headline)
