"""DVC stage `export`: float32 and int8 TFLite files, evaluated through LiteRT."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.ship import export

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--arch", required=True)
p.add_argument("--prepared", required=True)
p.add_argument("--model", required=True)
p.add_argument("--out", required=True, help="folder for the .tflite files and labels.txt")
p.add_argument("--metrics", required=True)
p.add_argument("--disagreement", required=True,
               help="PNG of the test images where float32 and int8 disagree")
p.add_argument("--evaluated", help="the evaluate stage's metrics (the Keras test accuracy)")
run_stage(export, **vars(p.parse_args()))
