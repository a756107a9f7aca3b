"""The analytics models after a backfill: the build the sensor launched when the backfill ended, and
the bundled project's full build against its incremental build of one new month (dbt's CLI on the
same warehouse, one process each, nothing else holding the file)."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path

import dagster as dg

from taxi_pipeline.lib.analytics.project import BUNDLED_PROJECT, AnalyticsProject, duckdb_profile


def sensor_builds(dagster_home: Path, after: float, timeout_s: float = 1800) -> list[dict]:
    """The analytics runs, once one that started after `after` (the backfill's end) has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            records = instance.get_run_records(filters=dg.RunsFilter(job_name="analytics_job"))
        builds = [{"run_id": r.dagster_run.run_id, "status": r.dagster_run.status.value, "started": r.start_time,
                   "ended": r.end_time, "created": r.create_timestamp.timestamp()} for r in records]
        if any(b["ended"] and b["started"] and b["created"] >= after - 60 for b in builds):
            return sorted(builds, key=lambda b: b["created"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"no analytics build ended {timeout_s} s after the backfill: {builds}")
        time.sleep(2)


def _timed(command: list[str], env: dict[str, str]) -> dict:
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def full_and_one_month(warehouse: Path, work: Path, month: str) -> dict:
    """`dbt build --full-refresh` of the bundled project, then `dbt build` of one month only."""
    project = AnalyticsProject(BUNDLED_PROJECT, work / "dbt", duckdb_profile(warehouse, "zoomcamp"))
    project.write_profile()
    base = [project.executable, "build", "--project-dir", str(project.project_dir), "--profiles-dir",
            str(project.profiles_dir), "--target-path", str(work / "dbt" / "target")]
    env = project.environment()
    full = _timed([*base, "--full-refresh"], env)
    one = _timed([*base, "--vars", json.dumps({"months": [month]})], env)
    return {"full": full, "one_month": one, "month": month}
