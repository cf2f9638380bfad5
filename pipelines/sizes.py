"""DVC stage `sizes`: canonical networks' Keras and TFLite file sizes (slow, cached; `make sizes`)."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.sizes import sizes

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--csv", required=True)
p.add_argument("--md", required=True)
p.add_argument("--plot", required=True)
run_stage(sizes, **vars(p.parse_args()))
