"""A team's instance (deploy/) on a real PostgreSQL: Debian's server, started by the tests on
127.0.0.1 (taxi_pipeline_tests/postgres.py), one fresh database per instance set up by
deploy/init-instance; `dagster` CLI subprocesses; a gRPC code server, a webserver and a daemon on
127.0.0.1 with deploy/workspace.grpc.yaml; DuckDB files in a temporary TAXI_HOME, loaded from the
bundled mirror of real TLC files through file://. Run records and event logs are read from
Postgres with psycopg2. Every server is stopped through the process id it was started with.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.client import DagsterGrpcClient
from dagster._serdes import deserialize_value

from taxi_pipeline_tests.postgres import (BIN, ROOT, PostgresServer, dagster_env, free_port, postgres_server,
                                          service, write_dagster_home)

pytestmark = pytest.mark.postgres

DEPLOY = ROOT / "deploy"
MIRROR_URL = f"file://{ROOT / 'taxi_pipeline_tests' / 'data' / 'mirror'}"
ARTIFACTS = ROOT / "test-artifacts"
# The four green months of the mirror: partition -> (file, data rows).
GREEN = {"2019-01-01": ("green_tripdata_2019-01.csv", 99), "2019-10-01": ("green_tripdata_2019-10.csv", 1_308),
         "2020-04-01": ("green_tripdata_2020-04.csv", 35_612), "2020-10-01": ("green_tripdata_2020-10.csv", 95_120)}
WAREHOUSE_STEPS = ["green_staging", "green_tripdata"]  # the steps in the `warehouse` pool
IMAGE = "taxi-pipeline:test"


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


@dataclass
class Instance:
    """A fresh Postgres database behind deploy/dagster.postgres.yaml, and its own TAXI_HOME."""

    pg: PostgresServer
    db: str
    env: dict[str, str]
    taxi_home: Path
    init_output: str

    def query(self, sql: str, params: object = None) -> list[tuple]:
        return self.pg.query(self.db, sql, params)

    def execute_month(self, partition: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "dagster"), "job", "execute", "-m", "taxi_pipeline.definitions", "-j", "green_taxi_job",
             "--tags", json.dumps({"dagster/partition": partition})],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def month_rows(self) -> dict[str, int]:
        with duckdb.connect(str(self.taxi_home / "warehouse.duckdb"), read_only=True) as con:
            return dict(con.execute("SELECT filename, count(*) FROM zoomcamp.green_tripdata GROUP BY 1").fetchall())

    def run_statuses(self) -> list[str]:
        return sorted(status for (status,) in self.query("SELECT status FROM runs"))


def new_instance(pg: PostgresServer, folder: Path) -> Instance:
    db = pg.create_database(folder.name)
    home = write_dagster_home(folder / "dagster_home", DEPLOY / "dagster.postgres.yaml")
    env = dagster_env(home, pg.env(db), TAXI_HOME=str(folder / "taxi"), TAXI_SOURCE_URL=MIRROR_URL)
    done = subprocess.run([str(DEPLOY / "init-instance")], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Instance(pg, db, env, folder / "taxi", done.stdout + done.stderr)


def finish(proc: subprocess.Popen, timeout_s: float = 240) -> str:
    output, _ = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, output[-4000:]
    return output


def test_init_instance_migrates_a_fresh_database_and_a_month_loads_through_the_cli(pg, tmp_path):
    instance = new_instance(pg, tmp_path / "one_month")
    schema = re.findall(r"current: (\w+)\s+latest: (\w+)", instance.init_output.split("after migration")[1])
    assert len(schema) == 3 and all(current == latest for current, latest in schema), instance.init_output
    assert instance.query("SELECT version_num FROM alembic_version") == [(schema[0][1],)]
    # The pool's limit is set explicitly, so no run creates it on first use (dagster#33552).
    assert instance.query('SELECT concurrency_key, "limit", using_default_limit FROM concurrency_limits') == [
        ("warehouse", 1, False)]

    finish(instance.execute_month("2020-04-01"))

    assert instance.run_statuses() == ["SUCCESS"]
    assert instance.month_rows() == {"green_tripdata_2020-04.csv": 35_612}
    [(materializations,)] = instance.query(
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND partition = %s",
        ["2020-04-01"])
    assert materializations == 3  # raw file, staging table, main table


def _step_windows(instance: Instance, steps: list[str]) -> list[tuple]:
    """(start, end, run, step) of each of these steps in every run, from the event log."""
    rows = instance.query("SELECT run_id, step_key, dagster_event_type, timestamp FROM event_logs WHERE "
                          "dagster_event_type IN ('STEP_START', 'STEP_SUCCESS') AND step_key = ANY(%s)", [steps])
    found: dict[tuple[str, str], dict[str, object]] = {}
    for run_id, step, kind, at in rows:
        found.setdefault((run_id, step), {})[kind] = at
    return sorted((times["STEP_START"], times["STEP_SUCCESS"], run_id, step) for (run_id, step), times in found.items())


def test_four_months_at_once_on_fresh_databases_share_the_warehouse_pool(pg, tmp_path):
    """Four `dagster job execute` processes of four months, started together, on three fresh
    databases: every run succeeds (no first-use race on the pool's limit), every month has its
    exact rows, and no two warehouse steps ever held the `warehouse` slot at the same time."""
    report = []
    for attempt in range(3):
        instance = new_instance(pg, tmp_path / f"four_at_once_{attempt}")
        procs = [instance.execute_month(partition) for partition in GREEN]
        for proc in procs:
            finish(proc)

        assert instance.run_statuses() == ["SUCCESS"] * 4
        assert instance.month_rows() == dict(GREEN.values())
        steps = _step_windows(instance, WAREHOUSE_STEPS)
        assert len(steps) == 8
        for before, after in zip(steps, steps[1:], strict=False):
            assert after[0] >= before[1], f"{after[2:]} started while {before[2:]} held the warehouse slot"
        runs = instance.query("SELECT start_time, end_time FROM runs")
        together = max(sum(s <= at < e for s, e in runs) for at, _ in runs)
        assert together >= 2, runs  # the runs did overlap: the pool, not luck, kept the steps apart
        [(blocked,)] = instance.query("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ENGINE_EVENT' "
                                      "AND event LIKE %s", ["%blocked by limit for pool warehouse%"])
        assert instance.query("SELECT count(*) FROM concurrency_limits WHERE using_default_limit") == [(0,)]
        report.append(f"db {attempt}: 4/4 SUCCESS, {together} runs at once, {blocked} blocked-step events")
    print("\n" + "\n".join(report))
