"""A warm stage launcher: `cnnzoo run` keeps one process with TensorFlow, Keras and MLflow already
imported and forks it for every DVC stage.

Why: on a 2-core CPU each stage process spends ~6 s importing TensorFlow, Keras and MLflow and
~1.3 s tearing the interpreter down; the classifier pipeline had 63 stages, so that alone was ~7 of
`make run`'s minutes. DVC still runs every stage's own `cmd:`. A stage script's first statement,
`warm.delegate()`, hands its argv, working directory, environment and standard streams to the
launcher named by `$CNNZOO_WARM` and exits with the stage's exit status. Under `dvc exp run`
(DVC sets `$DVC_EXP_NAME` for its stages) the first stage starts a launcher of its own for the
project folder, which later stages find and which exits after IDLE_S seconds without a stage
(`experiment_launcher`). Without either (plain `dvc repro`, tests) or when no launcher can be
reached, the script runs in its own process exactly as before.

The fork happens before TensorFlow has run anything (no eager context, device or thread pool
exists yet in the launcher), and a forked stage computes bit-identical results to a fresh process
(tests/test_warm.py). A stage whose caller dies (DVC interrupted, the client killed) kills itself,
as a stage process would have died with it. Environment variables that TensorFlow reads when it
loads (TF_CPP_MIN_LOG_LEVEL, CUDA_VISIBLE_DEVICES) are the launcher's, i.e. `cnnzoo run`'s.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cnnzoo.logs import native_output

log = logging.getLogger(__name__)

ENV = "CNNZOO_WARM"
# What the stages import; a module that fails to import here is imported by the stage itself.
PRELOAD = ("tensorflow", "keras", "mlflow", "mlflow.keras", "mlflow.store.tracking.sqlalchemy_store",
           "cnnzoo.stages.classify", "cnnzoo.stages.ship", "cnnzoo.stages.report",
           "cnnzoo.stages.visualize",
           "cnnzoo.stages.segment", "cnnzoo.stages.detect", "cnnzoo.stages.verify",
           "cnnzoo.training.loop", "cnnzoo.training.backbones", "cnnzoo.tasks.classification",
           "cnnzoo.deploy.convert", "cnnzoo.reporting.figures", "cnnzoo.reporting.insight_figures",
           "cnnzoo.reporting.insight", "cnnzoo.reporting.leaderboard", "cnnzoo.data.augment",
           "cnnzoo.data.datasets")
_LENGTH = struct.Struct("!Q")
_STATUS = struct.Struct("!i")
# The launcher's answer when this package's source changed after it imported it: the stage
# then runs cold, on the code DVC hashes, rather than on the launcher's stale copy.
STALE = -(2**31)
# An experiment's launcher exits after this long without a stage (a sweep's next experiment
# starts within seconds of the last one's report).
IDLE_S = float(os.environ.get("CNNZOO_WARM_IDLE", 120))
_in_launcher = False  # set in a forked stage: its own script must not delegate again
_preloaded: tuple = ()  # the package's source files as the launcher imported them


def source_stamp() -> tuple:
    """(name, mtime, size) of every module of this package: what a warm fork would run."""
    package = Path(__file__).parent.parent  # cnnzoo/
    return tuple((str(f.relative_to(package)), f.stat().st_mtime_ns, f.stat().st_size)
                 for f in sorted(package.rglob("*.py")))


def delegate() -> None:
    """Run this stage script in the warm launcher, if `cnnzoo run` started one, and exit with its
    status; otherwise return and let the script run here."""
    path = os.environ.get(ENV)
    if path == "off" or _in_launcher:
        return
    if not path and os.environ.get("DVC_EXP_NAME"):
        path = experiment_launcher(os.getcwd())
    if not path:
        return
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
        request = json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)})
        payload = request.encode()
        socket.send_fds(conn, [_LENGTH.pack(len(payload))], [0, 1, 2])
        conn.sendall(payload)
    except OSError:  # no launcher (it failed to start, or has exited): run in this process
        return
    try:
        status = _recv_exact(conn, _STATUS.size)
    except KeyboardInterrupt:  # closing the connection stops the stage (see _die_with_caller)
        sys.exit(130)
    if len(status) < _STATUS.size:
        sys.stderr.write("cnnzoo: the warm stage launcher died before the stage finished\n")
        sys.exit(1)
    (code,) = _STATUS.unpack(status)
    if code == STALE:
        sys.stderr.write("cnnzoo: the project's code changed during this run; running this "
                         "stage in a fresh process\n")
        return
    sys.exit(code)


def experiment_socket(folder: str) -> str:
    """Short and per project folder: a Unix socket's path is limited to ~107 bytes."""
    import hashlib
    import tempfile

    key = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"cnnzoo-warm-{os.getuid()}-{key}.sock")


def experiment_launcher(folder: str) -> str | None:
    """The socket of the launcher that serves `dvc exp run`'s stages in `folder`, started here
    (in its own session, detached) when none answers. Returns None if it cannot be started."""
    import fcntl

    path = experiment_socket(folder)
    try:
        with open(path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                return path  # a live launcher (an empty request: it just drops this connection)
            except OSError:
                pass
            finally:
                probe.close()
            Path(path).unlink(missing_ok=True)
            subprocess.Popen([sys.executable, "-m", "cnnzoo.tools.warm", path, "--idle", str(IDLE_S)],
                             start_new_session=True, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):  # bound before its imports: ready in well under a second
                if Path(path).exists():
                    return path
                time.sleep(0.05)
    except OSError:
        pass
    return None


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def serve(path: str, parent: int | None = None, idle: float | None = None) -> None:
    """Listen on `path` (bound before the imports, so early stages queue rather than fall back),
    preload, then fork one child per stage until `parent` exits, or, for an experiment's
    launcher, `idle` seconds pass without a stage or the package's source changes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    Path(path).unlink(missing_ok=True)  # a socket left by a killed launcher
    listener.bind(path)
    listener.listen(16)
    started = time.monotonic()
    global _preloaded
    _preloaded = source_stamp()  # before the imports: an edit during them is caught too
    # TensorFlow's C++ side logs "oneDNN custom operations are on" through absl before it reads
    # TF_CPP_MIN_LOG_LEVEL (on CPUs where oneDNN is on by default, e.g. AVX-512): kept for DEBUG.
    with native_output("warm launcher imports"):
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception as err:  # noqa: BLE001 - the stage will import it and report it
                log.debug("warm launcher: not preloading %s (%s)", name, err)
        with contextlib.suppress(Exception):  # an MLflow without it logs models all the same
            # log_model checks a model's pinned requirements against a module -> package map of
            # every installed distribution, built once per process (~1 s here): once for all.
            from mlflow.utils import requirements_utils
            requirements_utils._init_modules_to_packages_map()
    log.debug("warm launcher ready in %.1f s", time.monotonic() - started)
    listener.settimeout(1.0)
    last = time.monotonic()
    while parent is None or os.getppid() == parent:
        if idle is not None and (time.monotonic() - last > idle or source_stamp() != _preloaded):
            break  # an edited package needs a new launcher: the next stage starts one
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:  # reap finished stages
                pass
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(10.0)  # a client that connects and says nothing must not block the rest
        try:
            request, fds = _read_request(conn)
            conn.settimeout(None)
        except (OSError, ValueError) as err:
            log.warning("warm launcher: bad request (%s)", err)
            conn.close()
            continue
        last = time.monotonic()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            listener.close()
            _run_stage(conn, request, fds)  # never returns
        conn.close()
        for fd in fds:
            os.close(fd)
    if idle is not None:
        listener.close()
        Path(path).unlink(missing_ok=True)


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    head, fds, _, _ = socket.recv_fds(conn, _LENGTH.size, 3)
    try:
        head += _recv_exact(conn, _LENGTH.size - len(head))
        if len(head) < _LENGTH.size or len(fds) != 3:
            raise ValueError("incomplete request")
        (length,) = _LENGTH.unpack(head)
        return json.loads(_recv_exact(conn, length)), fds
    except (OSError, ValueError):
        for fd in fds:
            os.close(fd)
        raise


def _run_stage(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the stage process the client would have been."""
    global _in_launcher
    _in_launcher = True
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        # Fresh line-buffered streams on the client's descriptors (the launcher's were not ttys).
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(ENV, None)  # subprocesses of the stage start cold
        if source_stamp() != _preloaded:
            code = STALE
            return
        threading.Thread(target=_die_with_caller, args=(conn,), daemon=True).start()
        code = _exec_script(request["argv"])
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(_STATUS.pack(code))
        os._exit(code)  # skip the interpreter teardown: every output is written and closed


def _exec_script(argv: list[str]) -> int:
    import runpy
    import traceback

    sys.argv = list(argv)
    sys.path[0] = str(Path(argv[0]).resolve().parent)  # as `python script.py` would
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        sys.stderr.write(f"{stop.code}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:  # noqa: BLE001 - what an uncaught exception prints and returns
        traceback.print_exc()
        return 1
    return 0


def _die_with_caller(conn: socket.socket) -> None:
    """The client never sends after its request, so end-of-file means it is gone."""
    with contextlib.suppress(OSError):
        conn.recv(1)
    os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def launcher(tmp: str | Path) -> Iterator[dict[str, str]]:
    """Start a launcher for the duration of the block; yields the environment entry that makes
    stage scripts use it (none with CNNZOO_WARM=off: one cold process per stage). Stopped (and
    its socket removed with `tmp`) on the way out."""
    if os.environ.get(ENV) == "off":
        yield {}
        return
    path = str(Path(tmp) / "warm.sock")
    Path(path).unlink(missing_ok=True)  # readiness below is the socket file appearing
    proc = subprocess.Popen([sys.executable, "-m", "cnnzoo.tools.warm", path, str(os.getpid())])
    try:
        for _ in range(100):  # bound before the imports: ready in well under a second
            if Path(path).exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        yield {ENV: path} if proc.poll() is None else {}
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


if __name__ == "__main__":
    # Through the importable module, not this `__main__` copy: the stage scripts' own
    # `from cnnzoo import warm` must see the flag that the forked child sets.
    from cnnzoo.tools import warm

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group
        if len(sys.argv) > 3 and sys.argv[2] == "--idle":
            warm.serve(sys.argv[1], idle=float(sys.argv[3]))
        else:
            warm.serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
