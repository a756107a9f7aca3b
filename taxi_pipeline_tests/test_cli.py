"""`dagster job execute` as a user types it, against a loopback HTTP mirror and a DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from taxi_pipeline_tests.helpers.support import query, wait_until_each_logged, warehouse_held

ROOT = Path(__file__).parents[1]


def _execute(job: str, partition: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(cli), "job", "execute", "-m", "taxi_pipeline.definitions", "-j", job,
         "--tags", json.dumps({"dagster/partition": partition})],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_job_execute_loads_two_green_months_exactly_and_reruns_add_nothing(tmp_path, http_mirror):
    home = tmp_path / "home"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "TAXI_HOME": str(home),
           "TAXI_SOURCE_URL": http_mirror.url}
    (tmp_path / "dagster").mkdir()
    counts_sql = "SELECT filename, count(*), count(DISTINCT unique_row_id) FROM zoomcamp.green_tripdata GROUP BY 1"
    expected = {("green_tripdata_2020-04.csv", 35_612, 35_612), ("green_tripdata_2020-10.csv", 95_120, 95_120)}
    for _ in range(2):
        for partition in ("2020-04-01", "2020-10-01"):
            done = _execute("green_taxi_job", partition, env)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            assert "RUN_SUCCESS" in done.stdout + done.stderr
        assert set(query(home, counts_sql)) == expected


def test_concurrent_runs_wait_for_the_warehouse_instead_of_failing(tmp_path, http_mirror):
    """Three processes at once, two on the same month: DuckDB allows one writer process. The
    test holds the warehouse file until all three have logged that they wait for it (so they
    provably ran at once and waited, not failed), then lets go."""
    home = tmp_path / "home"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "TAXI_HOME": str(home),
           "TAXI_SOURCE_URL": http_mirror.url}
    (tmp_path / "dagster").mkdir()
    cli = Path(sys.executable).with_name("dagster")
    # Create the instance's SQLite storage first, as a running webserver or daemon would have:
    # three processes racing to create it is a Dagster start-up race, not what this test is about.
    subprocess.run([str(cli), "instance", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    procs = []
    with warehouse_held(home):
        for i, partition in enumerate(("2020-10-01", "2020-04-01", "2020-10-01")):
            log = tmp_path / f"run{i}.log"
            with open(log, "w") as out:
                procs.append((subprocess.Popen(
                    [str(cli), "job", "execute", "-m", "taxi_pipeline.definitions", "-j", "green_taxi_job",
                     "--tags", json.dumps({"dagster/partition": partition})],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                ), log))
        wait_until_each_logged(procs, f"warehouse {home / 'warehouse.duckdb'} is locked by")
    codes = [proc.wait(300) for proc, _ in procs]
    assert codes == [0, 0, 0], "\n".join(log.read_text()[-2000:] for _, log in procs)
    assert all("RUN_SUCCESS" in log.read_text() for _, log in procs)
    assert set(query(home, "SELECT filename, count(*), count(DISTINCT unique_row_id) FROM zoomcamp.green_tripdata GROUP BY 1")) == {
        ("green_tripdata_2020-04.csv", 35_612, 35_612), ("green_tripdata_2020-10.csv", 95_120, 95_120)
    }
