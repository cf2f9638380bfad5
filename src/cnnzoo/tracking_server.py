"""`make tracking-server`: one MLflow tracking server for a team, its runs in PostgreSQL.

The backend store is a real PostgreSQL cluster of its own (Debian's `postgresql`, installed by
scripts/install-postgres.sh), listening on loopback only with trust authentication: put it behind
your network's access control, or give the `postgres` role a password, before others reach it.
Artifacts go to a local folder that the server proxies (`--artifacts-destination`), so clients
upload over HTTP and need no access to the server's disk. Point the pipeline at it with
`MLFLOW_TRACKING_URI=http://<host>:<port> make run`.

As root (PostgreSQL refuses to run as root) the cluster runs as the `postgres` user, in a folder
that user can reach: /var/lib/postgresql/cnnzoo-<project digest> unless --data says otherwise.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
INSTALL_HINT = "run scripts/install-postgres.sh (Debian: sudo apt-get install postgresql)"


def pg_tool(name: str) -> str:
    """Path of a PostgreSQL server program (Debian keeps them off PATH), newest version."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if found:
        return found[-1]
    if on_path := shutil.which(name):
        return on_path
    raise FileNotFoundError(f"PostgreSQL's {name} not found: {INSTALL_HINT}")


def _is_root() -> bool:
    return os.geteuid() == 0


def default_data_dir(root: Path) -> Path:
    if _is_root():
        digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]
        return Path(f"/var/lib/postgresql/cnnzoo-{digest}")
    return root / ".cache/tracking/postgres"


@dataclass
class Postgres:
    """A private PostgreSQL cluster in `data`, on 127.0.0.1:`port`, holding database `db`."""

    data: Path
    port: int
    db: str = "mlflow"

    @property
    def uri(self) -> str:
        # The driver named: SQLAlchemy 2.1 defaults to psycopg 3, the project installs psycopg2.
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.db}"

    def _run(self, tool: str, *args: str) -> None:
        cmd = (pg_tool(tool), *args)
        if _is_root():
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode:
            server_log = self.data / "server.log"
            tail = server_log.read_text()[-800:] if server_log.is_file() else ""
            raise RuntimeError(f"{tool} failed: {(out.stderr or out.stdout).strip()[-800:]}"
                               + (f"\nserver log: {tail}" if tail else ""))

    def start(self) -> None:
        """Create the cluster on first use, start it and create the database; returns once the
        server accepts connections."""
        if not (self.data / "PG_VERSION").is_file():
            self.data.mkdir(parents=True, exist_ok=True)
            if _is_root():
                shutil.chown(self.data, "postgres", "postgres")
            log.info("creating a PostgreSQL cluster in %s", self.data)
            self._run("initdb", "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-instructions")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"),
                  "-w", "-t", "60", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}", "start")
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.db,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{self.db}"')
        finally:
            conn.close()
        log.info("PostgreSQL on 127.0.0.1:%d (data %s)", self.port, self.data)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def server_command(backend_uri: str, artifacts: Path, host: str, port: int) -> list[str]:
    """The MLflow tracking server over `backend_uri`, proxying artifacts stored in `artifacts`."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(artifacts.resolve()), "--host", host,
            "--port", str(port), "--workers", "1"]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from cnnzoo import logs

    logs.setup()
    p = argparse.ArgumentParser(prog="python -m cnnzoo.tracking_server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="where MLflow listens (0.0.0.0: the LAN)")
    p.add_argument("--port", type=int, default=5000, help="MLflow's port")
    p.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL's port (loopback)")
    p.add_argument("--data", type=Path, help="PostgreSQL's data folder")
    p.add_argument("--artifacts", type=Path, default=Path(".cache/tracking/artifacts"))
    args = p.parse_args(argv)
    try:
        pg = Postgres(args.data or default_data_dir(Path.cwd()), args.pg_port)
        pg.start()
    except (FileNotFoundError, RuntimeError, OSError) as err:
        log.error("tracking server not started: %s", err)
        return 1
    args.artifacts.mkdir(parents=True, exist_ok=True)
    log.info("MLflow tracking server on http://%s:%d (runs in %s, artifacts in %s); use it with "
             "MLFLOW_TRACKING_URI=http://%s:%d make run", args.host, args.port, pg.uri,
             args.artifacts, args.host, args.port)
    # SIGTERM (a service manager, a test) ends the server like Ctrl-C: MLflow first, then
    # PostgreSQL, so no cluster is left running without its server.
    signal.signal(signal.SIGTERM, _interrupt)
    # Its own process group: MLflow serves from a child process (uvicorn) that must end with it.
    server = subprocess.Popen(server_command(pg.uri, args.artifacts, args.host, args.port),
                              start_new_session=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        return 0
    finally:
        pg.stop()
        log.info("PostgreSQL stopped")


if __name__ == "__main__":
    sys.exit(main())
