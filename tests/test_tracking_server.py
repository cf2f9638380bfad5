"""`make tracking-server` for real: MLflow over a PostgreSQL cluster of its own on loopback, a
smoke pipeline tracked there and read back through MLflow's REST API; then the server down, and
the same pipeline still finishes, writes its DVC outputs and names the runs it could not track.

PostgreSQL comes from Debian's package (scripts/install-postgres.sh, run by `make test`); where
it could not be installed the module skips, saying so."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from cnnzoo import tracking_server
from cnnzoo.data.fetch import MIRROR_ENV
from tests.conftest import copy_project
from tests.test_pipeline_e2e import data_source

TARGET = "pretrain@lenet5"  # download -> augment -> pretrain: a short pipeline that trains


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, **query) -> dict:
    url = f"{base}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m cnnzoo.tracking_server` (what `make tracking-server` runs) on free ports, with
    its cluster where the `postgres` user can reach it; stopped and removed afterwards."""
    try:
        tracking_server.pg_tool("pg_ctl")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    if data_source() is None:
        pytest.skip("Fashion-MNIST not available offline (see tests/test_pipeline_e2e.py)")
    tmp = tmp_path_factory.mktemp("tracking")
    data = tracking_server.default_data_dir(tmp)  # as root: under /var/lib/postgresql
    port, pg_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnzoo.tracking_server", "--port", str(port), "--pg-port",
         str(pg_port), "--data", str(data), "--artifacts", str(tmp / "artifacts")],
        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                shutil.rmtree(data, ignore_errors=True)
                pytest.fail(f"tracking server did not start: {proc.communicate()[0][-3000:]}")
            time.sleep(0.5)
    state = {"proc": proc, "base": base, "pg": tracking_server.Postgres(data, pg_port),
             "tmp": tmp}
    yield state
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root, env = copy_project(tmp_path_factory.mktemp("project"))
    env[MIRROR_ENV] = data_source() or ""
    return root, env


def _run(root, env, *args):
    return subprocess.run([sys.executable, "-m", "cnnzoo.cli", "run", TARGET, *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=900)


def test_a_pipeline_tracked_on_the_postgres_server_reads_back_through_rest(server, project):
    root, env = project
    out = _run(root, {**env, "MLFLOW_TRACKING_URI": server["base"]})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "did not record" not in out.stdout + out.stderr

    base = server["base"]
    exp = _get(base, "experiments/get-by-name", experiment_name="cnnzoo")["experiment"]
    runs = _post(base, "runs/search", {"experiment_ids": [exp["experiment_id"]],
                                       "max_results": 100})["runs"]
    by_name = {r["info"]["run_name"]: r for r in runs}
    assert {"download", "augment", "pretrain-lenet5"} <= set(by_name)
    run = by_name["pretrain-lenet5"]
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["stage"] == "pretrain" and tags["arch"] == "lenet5"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    wrote = json.loads((root / "metrics/pretrain/lenet5.json").read_text())
    assert metrics["final_val_accuracy"] == pytest.approx(wrote["val_accuracy"])
    history = _get(base, "metrics/get-history", run_id=run["info"]["run_id"], metric_key="loss")
    assert len(history["metrics"]) == 3  # tiny params: lenet5 trains 3 epochs
    # Artifacts go through the server (proxied) into its local artifact root.
    listed = _get(base, "artifacts/list", run_id=run["info"]["run_id"])
    assert listed.get("files")
    assert any((server["tmp"] / "artifacts").rglob("*.csv"))

    # The runs are rows of the PostgreSQL cluster, not of a file store.
    import psycopg2

    pg = server["pg"]
    with psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname=pg.db) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT name, status FROM runs WHERE run_uuid = %s",
                        (run["info"]["run_id"],))
            assert cur.fetchone() == ("pretrain-lenet5", "FINISHED")


def test_with_the_server_down_training_finishes_and_says_what_was_not_tracked(server, project):
    root, env = project
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)  # as `make tracking-server` gets on Ctrl-C or from a manager
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0 and "PostgreSQL stopped" in log, log[-2000:]
    metrics = root / "metrics/pretrain/lenet5.json"
    metrics.unlink(missing_ok=True)

    out = _run(root, {**env, "MLFLOW_TRACKING_URI": server["base"]}, "--force", "--single-item")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert metrics.is_file() and (root / "models/pretrain/lenet5.keras").is_file()
    assert "MLflow run pretrain-lenet5 not tracked: server http://127.0.0.1:" in text
    assert "MLflow did not record 1 run(s): pretrain-lenet5" in out.stdout
