"""DVC stage `augment_effect`: one architecture trained on task B with and without augmentation."""

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo.tools import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/tools/warm.py)

import argparse

from cnnzoo.stages.classify import augment_effect
from cnnzoo.stages.common import run_stage

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--prepared", required=True)
p.add_argument("--augmented", required=True)
p.add_argument("--metrics", required=True)
p.add_argument("--plots", required=True, help="folder for the two training histories")
run_stage(augment_effect, **vars(p.parse_args()))
