"""DVC stage `code`: each pipeline script's fingerprint (the SHA-256 of every project file it
runs) in <out>/<script>.json; every other stage depends on its script's file."""

import argparse
import logging
from pathlib import Path

import _venv  # noqa: F401  (before cnnzoo: says to activate .venv)

from cnnzoo import logs
from cnnzoo.files import write_json
from cnnzoo.tools.closure import ROOT, fingerprint

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--out", required=True, help="folder of <script>.json fingerprints")
p.add_argument("scripts", nargs="+", help="pipelines/<script>.py files")
args = p.parse_args()
logs.setup()
for script in args.scripts:
    path = Path(args.out) / f"{Path(script).stem}.json"
    write_json(path, fingerprint(ROOT / script))  # atomic, byte-stable (sorted keys)
logging.getLogger("cnnzoo.code").info("code: %d script fingerprints in %s", len(args.scripts),
                                      args.out)
