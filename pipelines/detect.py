"""DVC stages `detect`, `detect_evaluate`, `detect_export`: YOLO v1-style detection on the
segmentation scenes."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.detect import detect, detect_evaluate, detect_export

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
sub = p.add_subparsers(dest="stage", required=True)
t = sub.add_parser("train", help="train the detector")
t.add_argument("--scenes", required=True)
t.add_argument("--init", help="pretrain@<backbone>'s model (detect.init: pretrain)")
t.add_argument("--out", required=True, help=".keras model")
t.add_argument("--metrics", required=True)
t.add_argument("--history", required=True, help="per-epoch CSV (DVC plot)")
e = sub.add_parser("evaluate", help="test mAP@0.5, per-class AP and the boxes figure")
e.add_argument("--scenes", required=True)
e.add_argument("--model", required=True)
e.add_argument("--metrics", required=True)
e.add_argument("--figure", required=True, help="true vs predicted boxes PNG")
x = sub.add_parser("export", help="TFLite variants, parity gate on mAP@0.5")
x.add_argument("--scenes", required=True)
x.add_argument("--model", required=True)
x.add_argument("--out", required=True)
x.add_argument("--metrics", required=True)
x.add_argument("--evaluated", help="detect_evaluate's metrics (the Keras mAP)")
args = vars(p.parse_args())
stage = {"train": detect, "evaluate": detect_evaluate, "export": detect_export}[args.pop("stage")]
run_stage(stage, **args)
