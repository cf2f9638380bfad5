"""The first import of every stage script. DVC runs a stage's `python` from PATH: one without
cnnzoo (the project's .venv not activated) gets one line saying so, not a ModuleNotFoundError."""

import importlib.util
import sys

if importlib.util.find_spec("cnnzoo") is None:
    sys.exit(f"cnnzoo is not installed for {sys.executable}: activate the project's environment "
             "(source .venv/bin/activate) and run DVC again, or use make run / cnnzoo run")
