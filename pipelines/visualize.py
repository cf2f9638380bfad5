"""DVC stage `visualize`: what the fine-tuned network learned (filters, top exemplars,
activation maximisation, Grad-CAM) and its training curves across the phases, as PNGs."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.visualize import visualize

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--arch", required=True)
p.add_argument("--prepared", required=True)
p.add_argument("--model", required=True, help="the fine-tuned .keras model")
p.add_argument("--histories", required=True,
               help="folder of <stage>/<arch>.csv training histories (pretrain, transfer, finetune)")
p.add_argument("--out", required=True, help="folder for the PNGs")
run_stage(visualize, **vars(p.parse_args()))
