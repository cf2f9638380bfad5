"""DVC stage `augment`: resolve the augmentation policy and render a preview grid."""

import argparse

from cnnzoo.stages import augment, run_stage

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", default="params.yaml")
p.add_argument("--prepared", required=True)
p.add_argument("--policy", required=True, help="resolved policy JSON (read by training)")
p.add_argument("--preview", required=True, help="preview grid PNG")
run_stage(augment, **vars(p.parse_args()))
