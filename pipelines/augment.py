"""DVC stage `augment`: augmented training shards, the resolved policy and a preview grid."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.common import run_stage
from cnnzoo.stages.data import augment

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--prepared", required=True)
p.add_argument("--out", required=True, help="folder for policy.json and the TFRecord shards")
p.add_argument("--preview", required=True, help="preview grid PNG")
run_stage(augment, **vars(p.parse_args()))
