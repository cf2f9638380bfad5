"""DVC stage `evaluate`: target-task test metrics and confusion matrix of the fine-tuned model."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.ship import evaluate

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--arch", required=True)
p.add_argument("--prepared", required=True)
p.add_argument("--model", required=True)
p.add_argument("--metrics", required=True)
p.add_argument("--confusion", required=True, help="confusion-matrix PNG")
p.add_argument("--reliability", required=True, help="reliability diagram PNG (calibration)")
run_stage(evaluate, **vars(p.parse_args()))
