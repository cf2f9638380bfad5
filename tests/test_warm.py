"""The warm stage launcher (`cnnzoo run`): a forked stage behaves like the process it replaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnzoo.tools import warm

pytestmark = pytest.mark.slow

STAGE = '''
from cnnzoo.tools import warm

warm.delegate()

import os, sys
from pathlib import Path

import numpy as np

print("warm" if warm._in_launcher else "cold", sys.argv[1:], Path.cwd().name,
      os.environ.get("STAGE_VALUE"), warm.ENV in os.environ, os.getppid())
if sys.argv[1] == "train":
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.BatchNormalization(), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 64)
    print(repr(model.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"]))
elif sys.argv[1] == "sleep":
    import time

    time.sleep(4)
    Path("finished").write_text("yes")
elif sys.argv[1] == "fail":
    sys.exit(3)
elif sys.argv[1] == "crash":
    raise RuntimeError("a bug in the stage")
'''


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("warm")
    with warm.launcher(tmp) as env:
        assert env, "the launcher did not start"
        yield env


def _stage(tmp_path: Path, *args: str, env: dict | None = None, **kwargs):
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    full = {**os.environ, "STAGE_VALUE": "from the caller", **(env or {})}
    return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=full,
                          capture_output=True, text=True, timeout=180, **kwargs)


def test_stage_runs_in_the_launcher_with_the_callers_argv_cwd_env_and_streams(launcher, tmp_path):
    done = _stage(tmp_path, "hello", env=launcher)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"warm ['hello'] {tmp_path.name} from the caller False ")


def test_forked_training_is_bit_identical_to_a_fresh_process(launcher, tmp_path):
    warm_run, cold_run = _stage(tmp_path, "train", env=launcher), _stage(tmp_path, "train")
    assert warm_run.returncode == cold_run.returncode == 0, warm_run.stderr + cold_run.stderr
    assert warm_run.stdout.splitlines()[0].startswith("warm")
    assert cold_run.stdout.splitlines()[0].startswith("cold")
    assert warm_run.stdout.splitlines()[1] == cold_run.stdout.splitlines()[1]


def test_exit_status_and_traceback_reach_the_caller(launcher, tmp_path):
    assert _stage(tmp_path, "fail", env=launcher).returncode == 3
    crashed = _stage(tmp_path, "crash", env=launcher)
    assert crashed.returncode == 1
    assert "RuntimeError: a bug in the stage" in crashed.stderr


def test_without_a_launcher_the_script_runs_in_its_own_process(tmp_path):
    for env in ({warm.ENV: str(tmp_path / "nobody.sock")}, {warm.ENV: "off"}):
        done = _stage(tmp_path, "hello", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("cold")


def test_killing_the_caller_stops_the_stage(launcher, tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    caller = subprocess.Popen([sys.executable, str(script), "sleep"], cwd=tmp_path,
                              env={**os.environ, **launcher})
    time.sleep(1.5)
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    time.sleep(4)
    assert not (tmp_path / "finished").exists()


def test_a_code_change_after_the_preload_runs_the_stage_cold(tmp_path):
    """The launcher imported this package when it started; a stage forked from it after a module
    changed on disk would run the old code while DVC records the new code's hash. It runs cold."""
    module = Path(warm.__file__).parents[1] / "files.py"
    before = module.stat()
    with warm.launcher(tmp_path) as env:
        assert _stage(tmp_path, "hello", env=env).stdout.startswith("warm")
        try:
            os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
            done = _stage(tmp_path, "hello", env=env)
        finally:
            os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cold")
    assert "code changed during this run" in done.stderr


def test_dvc_exp_run_stages_share_a_launcher_that_leaves_when_idle(tmp_path):
    """Under `dvc exp run` (DVC_EXP_NAME set) the first stage starts the project's launcher and
    the next stage is forked from the same one; it exits after CNNZOO_WARM_IDLE idle seconds."""
    env = {"DVC_EXP_NAME": "exp-test", "CNNZOO_WARM_IDLE": "8"}
    pids = []
    for _ in range(2):
        done = _stage(tmp_path, "hello", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("warm")
        pids.append(done.stdout.split()[-1])
    assert pids[0] == pids[1]  # one launcher (the stages' parent) for both
    sock = Path(warm.experiment_socket(str(tmp_path)))
    assert sock.exists()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sock.exists():
        time.sleep(1)
    assert not sock.exists()  # it left, removing its socket
