"""DVC stages `scenes`, `segment`, `segment_evaluate`, `segment_export`: U-Net segmentation."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.segment import scenes, segment, segment_evaluate, segment_export

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
sub = p.add_subparsers(dest="stage", required=True)
s = sub.add_parser("scenes", help="generate / load image and mask pairs")
s.add_argument("--out", required=True)
s.add_argument("--cache", required=True, help="the download stage's verified raw files")
t = sub.add_parser("train", help="train the segmentation model")
t.add_argument("--scenes", required=True)
t.add_argument("--init", help="pretrain@<encoder>'s model (segment.init: pretrain)")
t.add_argument("--out", required=True, help=".keras model")
t.add_argument("--metrics", required=True)
t.add_argument("--history", required=True, help="per-epoch CSV (DVC plot)")
e = sub.add_parser("evaluate", help="test pixel accuracy, IoU and the overlay figure")
e.add_argument("--scenes", required=True)
e.add_argument("--model", required=True)
e.add_argument("--metrics", required=True)
e.add_argument("--figure", required=True, help="input / ground truth / prediction PNG")
x = sub.add_parser("export", help="TFLite variants, parity gate on mean IoU")
x.add_argument("--scenes", required=True)
x.add_argument("--model", required=True)
x.add_argument("--out", required=True)
x.add_argument("--metrics", required=True)
x.add_argument("--evaluated", help="segment_evaluate's metrics (the Keras mean IoU)")
args = vars(p.parse_args())
stage = {"scenes": scenes, "train": segment, "evaluate": segment_evaluate,
         "export": segment_export}[args.pop("stage")]
run_stage(stage, **args)
