"""DVC stage `report`: the leaderboard across architectures (Markdown + CSV)."""

from cnnzoo import warm

warm.delegate()  # under `cnnzoo run`, a warm launcher runs this script (cnnzoo/warm.py)

import argparse

from cnnzoo.stages import report, run_stage

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--metrics-dir", dest="metrics_dir", required=True)
p.add_argument("--md", required=True)
p.add_argument("--csv", required=True)
run_stage(report, **vars(p.parse_args()))
