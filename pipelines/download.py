"""DVC stage `download`: fetch + verify the dataset, write the task A/B splits."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.data import download

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--out", required=True, help="prepared splits folder")
p.add_argument("--cache", required=True, help="where verified raw files are kept")
run_stage(download, **vars(p.parse_args()))
