"""DVC stage `report`: the leaderboard (Markdown + CSV), the mobile export, the deployment sizes."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.report import report

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--metrics-dir", dest="metrics_dir", required=True)
p.add_argument("--exports", required=True, help="the export stages' folders (exports/<arch>)")
p.add_argument("--md", required=True)
p.add_argument("--csv", required=True)
p.add_argument("--figure", required=True, help="accuracy vs MACs and vs int8 size (PNG)")
p.add_argument("--sizes", dest="sizes_csv", required=True,
               help="the sizes stage's CSV, included when present (not a DVC dependency)")
p.add_argument("--headline", required=True, help="the headline metrics (JSON) DVC compares")
p.add_argument("--robustness", dest="robustness_csv", required=True,
               help="the robustness stage's CSV, included when present and of these int8 files")
p.add_argument("--export-plots", dest="export_plots", required=True,
               help="the export stages' figures (float32/int8 disagreement grids)")
args = vars(p.parse_args())
run_stage(report, params_file=args["params"], **args)
