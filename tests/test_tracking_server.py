"""`make tracking-server` for real: MLflow over a PostgreSQL cluster of its own on loopback, a
smoke pipeline tracked there and read back through MLflow's REST API; then the server down, and
the same pipeline still finishes, writes its DVC outputs and names the runs it could not track.

PostgreSQL comes from Debian's package (scripts/install-postgres.sh, run by `make test`); where
it could not be installed the module skips, saying so."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from cnnzoo.data.fetch import MIRROR_ENV
from cnnzoo.tracking.server import Postgres, default_data_dir, pg_tool
from tests.conftest import copy_project, fashion_mnist_files

pytestmark = pytest.mark.e2e

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


def _serve(tmp, *extra: str, env: dict | None = None):
    """`python -m cnnzoo.tracking.server` (what `make tracking-server` runs) on free ports, with
    its cluster where the `postgres` user can reach it; yields its state, then stops it and
    removes the cluster."""
    try:
        pg_tool("pg_ctl")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    if fashion_mnist_files() is None:
        pytest.skip("Fashion-MNIST not available offline (see tests/test_pipeline_e2e.py)")
    data = default_data_dir(tmp)  # as root: under /var/lib/postgresql
    port, pg_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnzoo.tracking.server", "--port", str(port), "--pg-port",
         str(pg_port), "--data", str(data), "--artifacts", str(tmp / "artifacts"), *extra],
        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
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
    yield {"proc": proc, "base": base, "pg": Postgres(data, pg_port), "tmp": tmp}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from _serve(tmp_path_factory.mktemp("tracking"))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root, env = copy_project(tmp_path_factory.mktemp("project"))
    env[MIRROR_ENV] = fashion_mnist_files() or ""
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


CREDENTIALS = {"MLFLOW_TRACKING_USERNAME": "team", "MLFLOW_TRACKING_PASSWORD": "s3cret-for-tests",
               "CNNZOO_PG_PASSWORD": "pg-s3cret-for-tests"}


def _without_credentials() -> dict:
    return {k: v for k, v in os.environ.items() if k not in CREDENTIALS}


def test_off_loopback_without_credentials_the_server_refuses_to_start(tmp_path):
    """`make tracking-server HOST=0.0.0.0` with no credentials: one line, exit 2, and nothing
    started (no PostgreSQL cluster, no port bound); a credentials file others can read is
    refused the same way."""
    data = tmp_path / "pg"
    cmd = [sys.executable, "-m", "cnnzoo.tracking.server", "--host", "0.0.0.0", "--port",
           str(_free_port()), "--data", str(data)]
    out = subprocess.run(cmd, cwd=tmp_path, env=_without_credentials(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1 and "serving on 0.0.0.0 (off loopback) needs authentication" in lines[0]
    assert "MLFLOW_TRACKING_PASSWORD" in lines[0] and not data.exists()
    loose = tmp_path / "credentials"
    loose.write_text("".join(f"{k}={v}\n" for k, v in CREDENTIALS.items()))
    loose.chmod(0o644)
    out = subprocess.run([*cmd, "--credentials", str(loose)], cwd=tmp_path,
                         env=_without_credentials(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and f"chmod 600 {loose}" in out.stdout + out.stderr


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracking-auth")
    creds = tmp / "credentials"
    creds.write_text("".join(f"{k}={v}\n" for k, v in CREDENTIALS.items()))
    creds.chmod(0o600)
    yield from _serve(tmp, "--auth", "--credentials", str(creds), env=_without_credentials())


def test_with_auth_strangers_get_401_and_the_team_tracks_a_stage(auth_server, project):
    base, pg = auth_server["base"], auth_server["pg"]
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=10"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(search, timeout=30)
    assert refused.value.code == 401
    wrong = urllib.request.Request(search, headers={"Authorization": "Basic " + base64.b64encode(
        b"team:wrong").decode()})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong, timeout=30)
    assert refused.value.code == 401

    root, env = project
    env = {**env, **CREDENTIALS, "MLFLOW_TRACKING_URI": base}
    out = _run(root, env, "--force", "--single-item")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "did not record" not in out.stdout + out.stderr
    token = base64.b64encode(b"team:" + CREDENTIALS["MLFLOW_TRACKING_PASSWORD"].encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {token}"}
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/experiments/get-by-name?"
                                 "experiment_name=cnnzoo", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        exp_id = json.loads(resp.read())["experiment"]["experiment_id"]
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search",
                                 json.dumps({"experiment_ids": [exp_id]}).encode(), headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        runs = json.loads(resp.read())["runs"]
    assert [r["info"]["status"] for r in runs if r["info"]["run_name"] == "pretrain-lenet5"] \
        == ["FINISHED"]

    # PostgreSQL asks for its password too (scram-sha-256), even on loopback.
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname=pg.db)
    psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname=pg.db,
                     password=CREDENTIALS["CNNZOO_PG_PASSWORD"]).close()
