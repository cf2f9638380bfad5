"""DVC stage `robustness`: every family's Keras model and int8 file on corrupted test images
(slow, cached; `make robustness`)."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.robust import robustness

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--prepared", required=True)
p.add_argument("--models", required=True, help="the fine-tuned models' folder")
p.add_argument("--exports", required=True, help="the export stages' folders (exports/<arch>)")
p.add_argument("--csv", required=True)
p.add_argument("--md", required=True)
p.add_argument("--plot", required=True)
run_stage(robustness, **vars(p.parse_args()))
