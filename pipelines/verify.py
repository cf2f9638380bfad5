"""DVC stages `verify`, `verify_pairs`, `verify_evaluate`, `verify_export`: Siamese
verification of identities never seen in training."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.verify import verify, verify_evaluate, verify_export, verify_pairs

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
sub = p.add_subparsers(dest="stage", required=True)
for name, what in (("triplet", "the embedding, triplet loss"), ("pairs", "the binary variant")):
    t = sub.add_parser(name, help=f"train {what} on task A")
    t.add_argument("--prepared", required=True)
    if name == "triplet":
        t.add_argument("--augmented", required=True, help="the augment stage's folder")
    t.add_argument("--init", help="task-A classifier to start from (verify.init: pretrain)")
    t.add_argument("--out", required=True, help=".keras model")
    t.add_argument("--metrics", required=True)
    t.add_argument("--history", required=True, help="per-epoch CSV (DVC plot)")
e = sub.add_parser("evaluate", help="one-shot verification on task B's unseen classes")
e.add_argument("--prepared", required=True)
e.add_argument("--embedding", required=True)
e.add_argument("--pairs", required=True)
e.add_argument("--metrics", required=True)
e.add_argument("--roc", required=True, help="ROC curves PNG")
x = sub.add_parser("export", help="the embedding as TFLite, parity gate on AUC")
x.add_argument("--prepared", required=True)
x.add_argument("--model", required=True)
x.add_argument("--out", required=True)
x.add_argument("--metrics", required=True)
x.add_argument("--evaluated", help="verify_evaluate's metrics (the Keras AUC)")
args = vars(p.parse_args())
stage = {"triplet": verify, "pairs": verify_pairs, "evaluate": verify_evaluate,
         "export": verify_export}[args.pop("stage")]
run_stage(stage, **args)
