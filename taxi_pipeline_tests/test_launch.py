"""`dagster job launch` on the embedded default, as a new user tries it: the repository's
dagster.yaml (SQLite under a temporary DAGSTER_HOME, the run queue), the workspace.yaml of the
README, the DuckDB target in a temporary TAXI_HOME, months from the loopback HTTP mirror. The
`dagster` CLI and `dagster-daemon run` are real subprocesses; runs are read from the instance.
(The same command on the Compose deployment: test_deploy.py.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import duckdb
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from taxi_pipeline_tests.helpers.postgres import BIN, ROOT, service

pytestmark = pytest.mark.deploy


def test_a_launched_run_waits_in_the_queue_until_a_daemon_starts_it(http_mirror, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(home),
           "TAXI_HOME": str(tmp_path / "taxi"), "TAXI_SOURCE_URL": http_mirror.url,
           "TAXI_TLC_URL": f"file://{tmp_path / 'no-tlc'}"}
    tags = {"dagster/partition": "2019-01-01", "launched_by": "embedded-test"}
    launched = subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "green_taxi_job",
                               "--tags", json.dumps(tags)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=180, check=False)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]

    with DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        assert run.status == DagsterRunStatus.QUEUED  # nothing dequeues it without a daemon
        assert run.tags["launched_by"] == "embedded-test" and run.tags["taxi"] == "green"
        print(f"\n`dagster job launch` stdout: {launched.stdout.strip()!r}; run {run.run_id[:8]} {run.status.value}")

        with service([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path / "daemon.log"):
            deadline = time.monotonic() + 240
            while (status := instance.get_run_by_id(run.run_id).status) not in (
                    DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
                time.sleep(1)
        assert status == DagsterRunStatus.SUCCESS, (tmp_path / "daemon.log").read_text()[-3000:]
        assert len(instance.get_runs()) == 1

    with duckdb.connect(str(tmp_path / "taxi" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM zoomcamp.green_tripdata").fetchone() == (99,)
