"""`make tracking-server`: one MLflow tracking server for a team, its runs in PostgreSQL.

The backend store is a real PostgreSQL cluster of its own (Debian's `postgresql`, installed by
scripts/install-postgres.sh), listening on loopback only. Off loopback (`--host 0.0.0.0`) the
server lets no one in unasked: MLflow runs its basic-auth app (every request but /health needs a
user and password) and PostgreSQL a password (scram-sha-256), both from a credentials file or
the environment (`Credentials`), never from params.yaml or git; without them it refuses to
start. `--auth` turns the same on for loopback. Artifacts go to a local folder that the server
proxies (`--artifacts-destination`), so clients upload over HTTP and need no access to the
server's disk. Point the pipeline at it with `MLFLOW_TRACKING_URI=http://<host>:<port> make run`
(and MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD when it asks for them).

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
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# What the credentials file (KEY=value lines) or the environment must give: MLflow's clients read
# the first two themselves, so a user exports the same names to track on the server.
CREDENTIAL_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "CNNZOO_PG_PASSWORD")


class CredentialsError(ValueError):
    """Authentication is required but its credentials are missing or unsafe."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    pg_password: str

    @classmethod
    def load(cls, path: Path | None) -> Credentials:
        """From `path` (KEY=value lines, readable by its owner only) over the environment."""
        values = {k: os.environ.get(k, "") for k in CREDENTIAL_KEYS}
        if path is not None:
            if not path.is_file():
                raise CredentialsError(f"credentials file {path} not found")
            if path.stat().st_mode & 0o077:
                raise CredentialsError(f"credentials file {path} is readable by others: "
                                       f"chmod 600 {path}")
            for line in path.read_text().splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and key.strip() in CREDENTIAL_KEYS:
                    values[key.strip()] = value.strip()
        missing = [k for k in CREDENTIAL_KEYS if not values[k]]
        if missing:
            raise CredentialsError(f"no {', '.join(missing)}: set them in the environment or in a"
                                   " file passed with --credentials (KEY=value lines, chmod 600)")
        return cls(*(values[k] for k in CREDENTIAL_KEYS))


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
    password: str | None = None  # set: the role needs it (scram-sha-256); None: trust

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
        # Trust while the server starts (it listens on loopback only), so that the role's
        # password can be set, then passwords only: `reload` applies the new rules.
        self._write_hba("trust")
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
                cur.execute("ALTER ROLE postgres PASSWORD %s", (self.password,))  # None: none
        finally:
            conn.close()
        if self.password:
            self._write_hba("scram-sha-256")
            self._run("pg_ctl", "-D", str(self.data), "reload")
        log.info("PostgreSQL on 127.0.0.1:%d (data %s, %s)", self.port, self.data,
                 "password required" if self.password else "trust: loopback only")

    def _write_hba(self, method: str) -> None:
        hba = self.data / "pg_hba.conf"
        hba.write_text("# written by cnnzoo.tracking.server at each start\n" + "".join(
            f"{kind:<6} all all {addr:<14} {method}\n"
            for kind, addr in (("local", ""), ("host", "127.0.0.1/32"), ("host", "::1/128"))))
        if _is_root():
            shutil.chown(hba, "postgres", "postgres")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def server_command(backend_uri: str, artifacts: Path, host: str, port: int,
                   auth: bool = False) -> list[str]:
    """The MLflow tracking server over `backend_uri`, proxying artifacts stored in `artifacts`;
    with `auth`, behind MLflow's basic-auth app."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(artifacts.resolve()), "--host", host,
            "--port", str(port), "--workers", "1", *(["--app-name", "basic-auth"] if auth else [])]


def auth_env(creds: Credentials, folder: Path) -> dict[str, str]:
    """The server's environment for basic auth: its config file (users in a SQLite store in
    `folder`; the admin is created from `creds` on first start, later changes go through
    MLflow's update-password API), the passwords, which stay out of every command line, and the
    key that signs the auth app's CSRF tokens (made once, kept in `folder`)."""
    import secrets

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = folder / "secret_key"
    if not key.is_file():
        key.touch(mode=0o600)
        key.write_text(secrets.token_hex(32))
    config = folder / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{(folder / 'users.db').resolve()}\n"
                      f"admin_username = {creds.username}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config.resolve()),
            "MLFLOW_AUTH_ADMIN_PASSWORD": creds.password, "PGPASSWORD": creds.pg_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
            or key.read_text().strip()}


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from cnnzoo import logs

    logs.setup()
    p = argparse.ArgumentParser(prog="python -m cnnzoo.tracking.server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="where MLflow listens (0.0.0.0: the LAN)")
    p.add_argument("--port", type=int, default=5000, help="MLflow's port")
    p.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL's port (loopback)")
    p.add_argument("--data", type=Path, help="PostgreSQL's data folder")
    p.add_argument("--artifacts", type=Path, default=Path(".cache/tracking/artifacts"))
    p.add_argument("--auth", action="store_true",
                   help="require users and passwords on loopback too (always off loopback)")
    p.add_argument("--credentials", type=Path,
                   help="KEY=value file (chmod 600) with " + ", ".join(CREDENTIAL_KEYS) +
                   " (default: the environment)")
    args = p.parse_args(argv)
    auth = args.auth or args.host not in LOOPBACK
    creds = None
    if auth:
        try:
            creds = Credentials.load(args.credentials)
        except CredentialsError as err:
            why = "--auth" if args.host in LOOPBACK else f"serving on {args.host} (off loopback)"
            log.error("tracking server not started: %s needs authentication: %s", why, err)
            return 2
    try:
        pg = Postgres(args.data or default_data_dir(Path.cwd()), args.pg_port,
                      password=creds.pg_password if creds else None)
        pg.start()
    except (FileNotFoundError, RuntimeError, OSError) as err:
        log.error("tracking server not started: %s", err)
        return 1
    args.artifacts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(auth_env(creds, args.artifacts.parent / "auth") if creds else {})}
    log.info("MLflow tracking server on http://%s:%d (runs in %s, artifacts in %s, %s); use it "
             "with MLFLOW_TRACKING_URI=http://%s:%d make run", args.host, args.port, pg.uri,
             args.artifacts, f"users: basic auth, admin {creds.username}" if creds else
             "no authentication: loopback only", args.host, args.port)
    # SIGTERM (a service manager, a test) ends the server like Ctrl-C: MLflow first, then
    # PostgreSQL, so no cluster is left running without its server.
    signal.signal(signal.SIGTERM, _interrupt)
    # Its own process group: MLflow serves from a child process (uvicorn) that must end with it.
    server = subprocess.Popen(server_command(pg.uri, args.artifacts, args.host, args.port,
                                             auth=creds is not None), env=env,
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
