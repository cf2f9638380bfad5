"""DVC stages `pretrain`, `transfer`, `finetune`: one training routine, three settings."""

import argparse

from cnnzoo.stages import run_stage, train

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("stage", choices=["pretrain", "transfer", "finetune"])
p.add_argument("--params", default="params.yaml")
p.add_argument("--arch", required=True)
p.add_argument("--prepared", required=True)
p.add_argument("--augmented", required=True, help="the augment stage's folder")
p.add_argument("--init", help="model of the previous stage (transfer, finetune)")
p.add_argument("--out", required=True, help=".keras model")
p.add_argument("--metrics", required=True)
p.add_argument("--history", required=True, help="per-epoch CSV (DVC plot)")
run_stage(train, **vars(p.parse_args()))
