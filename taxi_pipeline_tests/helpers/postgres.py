"""A throwaway PostgreSQL for the tests, and the Dagster processes that run against it.

The server is Debian's (`scripts/postgres-setup` installs it if missing), with its own data folder
in the system temp folder (pytest's temp root is mode 0700, which the `postgres` user cannot
enter), listening on 127.0.0.1 on a free port, with password authentication over TCP so that
DAGSTER_PG_PASSWORD is really used. As root (CI) it runs as the `postgres` user: `initdb` and
`pg_ctl` refuse root. It is stopped by its process id, read from its own `postmaster.pid`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from taxi_pipeline_tests.helpers.servers import stop_process_group

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
USER = "dagster"
PASSWORD = "taxi-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_bin() -> Path:
    def found() -> list[Path]:
        return sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))

    if not found():
        subprocess.run(["bash", str(ROOT / "scripts" / "postgres-setup")], check=True)
    return found()[-1].parent


@dataclass
class PostgresServer:
    port: int
    pid: int
    host: str = "127.0.0.1"

    def connect(self, db_name: str = "postgres"):
        return psycopg2.connect(host=self.host, port=self.port, user=USER, password=PASSWORD,
                                dbname=db_name, connect_timeout=5)

    def create_database(self, db_name: str) -> str:
        con = self.connect()
        con.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{db_name}"')
        finally:
            con.close()
        return db_name

    def query(self, db_name: str, sql: str, params: object = None) -> list[tuple]:
        con = self.connect(db_name)
        try:
            with con.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            con.close()

    def env(self, db_name: str) -> dict[str, str]:
        """The variables deploy/dagster.postgres.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": USER,
                "DAGSTER_PG_PASSWORD": PASSWORD, "DAGSTER_PG_DB": db_name}


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    folder = Path(tempfile.mkdtemp(prefix="taxi-postgres-"))
    as_postgres = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    pg_bin, data = _server_bin(), folder / "data"
    (folder / "pwfile").write_text(PASSWORD + "\n")
    if as_postgres:
        shutil.chown(folder / "pwfile", "postgres", "postgres")
    try:
        _run([*as_postgres, pg_bin / "initdb", "-D", data, "-U", USER, "-E", "UTF8", "--no-sync",
              f"--pwfile={folder / 'pwfile'}", "--auth-local=trust", "--auth-host=scram-sha-256"])
        port = free_port()
        options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        log = folder / "server.log"
        _run([*as_postgres, pg_bin / "pg_ctl", "-D", data, "-l", log, "-w", "-o", options, "start"], log)
        pid = int((data / "postmaster.pid").read_text().split()[0])
        try:
            yield PostgresServer(port, pid)
        finally:
            _stop_pid(pid, signal.SIGINT)  # SIGINT: Postgres' fast shutdown
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(args: list, log: Path | None = None) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        server_log = log.read_text()[-2000:] if log and log.exists() else ""
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}{server_log}")


def _stop_pid(pid: int, first: signal.Signals, wait_s: float = 20) -> None:
    """Stops a process that is not our child (we cannot wait() for it): signal, poll, SIGKILL."""
    for sig in (first, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                    return  # exited; its parent (init) has yet to reap it
            except FileNotFoundError:
                return
            time.sleep(0.1)


def write_dagster_home(folder: Path, instance_yaml: Path) -> Path:
    """A DAGSTER_HOME whose dagster.yaml is the given deploy file, as the Docker image installs it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(instance_yaml, folder / "dagster.yaml")
    return folder


def dagster_env(dagster_home: Path, pg_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment of every Dagster process of a test: the venv's commands first on PATH (for
    deploy/init-instance), the instance, the Postgres variables."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DAGSTER_HOME": str(dagster_home),
            **pg_env, **extra}


@contextlib.contextmanager
def service(args: list[str], env: dict[str, str], log: Path, ready_url: str | None = None,
            ready_timeout_s: float = 120) -> Iterator[subprocess.Popen]:
    """Runs a long-lived Dagster process (webserver, daemon, code server) until the block ends, then
    stops its process group by the process id it started with (SIGTERM, then SIGKILL)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + ready_timeout_s
            while ready_url:
                try:
                    urllib.request.urlopen(ready_url, timeout=2).read()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                    time.sleep(0.5)
            yield proc
        finally:
            stop_process_group(proc)

