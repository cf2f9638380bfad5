"""DVC stages `pretrain`, `transfer`, `finetune`, `scratch`: one training routine, four uses."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.classify import finetune, pretrain, scratch, transfer
from cnnzoo.stages.common import run_stage

STAGES = {"pretrain": pretrain, "transfer": transfer, "finetune": finetune, "scratch": scratch}
NEEDS_INIT = ("transfer", "finetune")

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("stage", choices=list(STAGES))
p.add_argument("--params", default="params.yaml")
p.add_argument("--arch", required=True)
p.add_argument("--prepared", required=True)
p.add_argument("--augmented", required=True, help="the augment stage's folder")
p.add_argument("--init", help="model of the previous stage (transfer, finetune)")
p.add_argument("--out", required=True, help=".keras model")
p.add_argument("--metrics", required=True)
p.add_argument("--history", required=True, help="per-epoch CSV (DVC plot)")
args = vars(p.parse_args())
stage = args.pop("stage")
if stage in NEEDS_INIT and not args["init"]:
    p.error(f"{stage} needs --init (the previous stage's model)")
if stage not in NEEDS_INIT:
    args.pop("init")
run_stage(STAGES[stage], **args)
