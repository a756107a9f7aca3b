"""The course's 2019-2020 backfill, green and yellow, 48 months (116,825,619 rows), launched as one
backfill the way the UI launches it and run by the daemon, against the sum of its months' floors.

    .venv/bin/python -m benchmarks.backfill                  # the release's real row counts
    .venv/bin/python -m benchmarks.backfill --scale 1/50     # the same months at 1/50 of the rows

The months are built from real rows (`backfill_mirror`) and served from a loopback HTTP mirror;
each month's floor (DuckDB's typed CTAS of the file, `floor.py`) is measured first, one process
each. Then a webserver and a daemon start on the project's `dagster.yaml` (embedded target), and
one asset backfill of both colours' assets over the 24 months is launched through GraphQL's
`launchPartitionBackfill`, as the UI's *Materialize* -> *Launch backfill* does. Where the time
went comes from the runs' own event logs. Then the analytics models: the one build their sensor
launches when the backfill ends, and the bundled dbt project's full build against its incremental
build of one month (`analytics.py`). Results go to `results/backfill.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path

import duckdb

from benchmarks.analytics import full_and_one_month, sensor_builds
from benchmarks.backfill_mirror import backfill_months, build_mirror
from benchmarks.backfill_report import collect, write
from benchmarks.bench import MEMORY_LIMIT, _folder_bytes, _python, used_bytes
from benchmarks.dagster_stack import dagster_stack, environment, wait_for_daemon
from taxi_pipeline.lib.colours import COLOURS
from taxi_pipeline_tests.helpers.servers import serve_folder

ROOT = Path(__file__).parents[1]
LAUNCH = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) { __typename
    ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
    ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } } }"""
STATUS = """query Backfill($backfillId: String!) { partitionBackfillOrError(backfillId: $backfillId) {
  ... on PartitionBackfill { status numPartitions } } }"""
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
ASSETS = [f"{c}_{suffix}" for c in COLOURS for suffix in ("raw_file", "staging", "tripdata")]


def _floors(months, files: dict[str, Path], work: Path) -> dict[str, dict]:
    """Each month's floor, its own process, its table's used bytes; the database then deleted."""
    floors = {}
    for m in months:
        database = work / "floor" / f"{m.file_name}.duckdb"
        measured = _python("floor.py", [str(files[m.file_name]), str(database), MEMORY_LIMIT,
                                        f"--colour={m.colour.name}"], work, "floor")
        floors[m.file_name] = {"wall_s": measured.wall_s, "cpu_s": measured.cpu_s, "bytes": used_bytes(database),
                               "rss_mb": measured.peak_rss_mb}
        database.unlink()
    return floors


def _month_rows(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {name: rows for c in COLOURS.values() for name, rows in con.execute(
            f"SELECT filename, count(*) FROM zoomcamp.{c.main_table} GROUP BY 1").fetchall()}


def run(scale: Fraction, out: Path, work: Path, cache: Path, instance_yaml: Path = ROOT / "dagster.yaml") -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    months = backfill_months(scale)
    started = time.monotonic()
    files = build_mirror(months, work / "mirror", cache)
    print(f"{len(months)} months, {sum(m.rows for m in months):,} rows, built in {time.monotonic() - started:.0f} s",
          flush=True)
    floors = _floors(months, files, work)
    print(f"floors: {sum(f['wall_s'] for f in floors.values()):.1f} s in all", flush=True)
    taxi_home = work / "taxi"
    with serve_folder(work / "mirror") as mirror:
        env = environment(TAXI_HOME=str(taxi_home), TAXI_SOURCE_URL=mirror.url, TAXI_TLC_URL=f"{mirror.url}/tlc")
        with dagster_stack(work, env, instance_yaml) as stack:
            wait_for_daemon(stack)
            partitions = sorted({m.partition for m in months})
            launched, load_at_launch = time.time(), os.getloadavg()
            result = stack.graphql(LAUNCH, {"backfillParams": {
                "assetSelection": [{"path": [key]} for key in ASSETS], "partitionNames": partitions,
                "fromFailure": False, "tags": [{"key": "dagster/from_ui", "value": "true"}],
            }})["launchPartitionBackfill"]
            if result["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(result)
            backfill_id = result["backfillId"]
            while (status := stack.graphql(STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]["status"]) \
                    not in DONE:
                time.sleep(1)
            completed, load_at_end = time.time(), os.getloadavg()
            dagster_home = Path(stack.env["DAGSTER_HOME"])
            runs = collect(dagster_home, backfill_id)
            # The analytics sensor waits for the backfill to end, then launches one build.
            builds = sensor_builds(dagster_home, after=max(r["ended"] or 0 for r in runs))
            print(f"analytics: {len(builds)} build(s) after the backfill", flush=True)
            memory = stack.memory
    analytics = full_and_one_month(taxi_home / "warehouse.duckdb", work, max(m.partition for m in months))
    report = {
        "scale": str(scale), "instance_yaml": instance_yaml.read_text(), "backfill_status": status,
        "launched": launched, "backfill_completed": completed,
        "months": [{"file": m.file_name, "partition": m.partition, "rows": m.rows} for m in months],
        "floors": floors, "loaded_rows": _month_rows(taxi_home / "warehouse.duckdb"), "runs": runs,
        "load": " ".join(f"{x:.1f}" for x in load_at_launch) + " -> " + " ".join(f"{x:.1f}" for x in load_at_end),
        "cpu_s": round(sum(memory.cpu_s.values()), 1), "cpu_s_by_role": memory.cpu_by_role(),
        "peak_rss_mb": round(memory.peak_mb, 1), "run_peak_rss_mb": round(max(memory.run_peaks_mb.values(), default=0), 1),
        "warehouse_bytes": used_bytes(taxi_home / "warehouse.duckdb"), "bucket_bytes": _folder_bytes(taxi_home / "bucket"),
        "mirror_bytes": _folder_bytes(work / "mirror"),
        "analytics_builds": builds, "analytics_cli": analytics,
    }
    return write(report, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=Fraction, default=Fraction(1), help="fraction of the real rows, e.g. 1/50")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work_backfill")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the pools of rows are kept between runs (default: inside --work, removed)")
    parser.add_argument("--instance-yaml", type=Path, default=ROOT / "dagster.yaml",
                        help="the instance config to run on (default: the project's dagster.yaml)")
    parser.add_argument("--keep", action="store_true", help="keep --work (the warehouse, logs) afterwards")
    args = parser.parse_args()
    summary = run(args.scale, args.out, args.work, args.cache or args.work / "pool", args.instance_yaml)
    print((args.out / "backfill.md").read_text())
    print(json.dumps(summary["summary"], indent=2))
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
