"""Where a backfill's time went, from the runs' records and event logs, and its report."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from benchmarks.dagster_stack import RUN_WORKER
from taxi_pipeline.lib.warehouses.duckdb.lock_wait import LOCK_TAKEN

# Steps that hold the embedded warehouse's file (its one writer): staging, the merge, the check.
# A step that had to wait for the file logs when it took it (`LOCK_TAKEN`): its busy time starts
# there, not at the step's start ("warehouse_slot" in the report is the file's one writer slot).
POOLED = ("_staging", "_tripdata", "_month_matches_source")


def collect(dagster_home: Path, backfill_id: str) -> list[dict]:
    """Each run of the backfill: its partition, status, times (epoch s) and its steps' intervals."""
    runs = []
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})):
            run = record.dagster_run
            steps: dict[str, dict] = {}
            for entry in instance.all_logs(run.run_id):
                if entry.dagster_event is None:
                    if entry.step_key and LOCK_TAKEN in entry.user_message:
                        steps.setdefault(entry.step_key, {})["lock_taken"] = entry.timestamp
                    continue
                if entry.dagster_event.event_type not in kinds:
                    continue
                step = steps.setdefault(entry.step_key, {})
                key = "start" if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START else "end"
                step[key] = entry.timestamp
            runs.append({
                "run_id": run.run_id, "partition": run.tags.get("dagster/partition"), "status": run.status.value,
                "created": record.create_timestamp.timestamp(), "started": record.start_time, "ended": record.end_time,
                "steps": steps,
            })
    return sorted(runs, key=lambda r: r["created"])


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def summarise(report: dict) -> dict:
    runs, launched = report["runs"], report["launched"]
    floors = report["floors"]
    last_end = max(r["ended"] for r in runs)
    wall = last_end - launched
    floors_s = sum(f["wall_s"] for f in floors.values())
    steps = [(name, s) for r in runs for name, s in r["steps"].items() if "start" in s and "end" in s]
    pooled = [(s.get("lock_taken", s["start"]), s["end"]) for name, s in steps if name.endswith(POOLED)]
    first_pooled = min(a for a, _ in pooled)
    busy = _union(pooled)
    merged = [name for name, s in steps if name.endswith("_tripdata")]
    partitions = [r["partition"] for r in runs]
    loaded = report["loaded_rows"]
    exact = {m["file"]: loaded.get(m["file"], 0) == m["rows"] for m in report["months"]}
    by_kind: dict[str, list[float]] = {}
    for name, s in steps:
        by_kind.setdefault(name.split("_", 1)[1], []).append(s["end"] - s["start"])
    overhead_in = [min(s["start"] for s in r["steps"].values() if "start" in s) - r["started"] for r in runs]
    overhead_out = [r["ended"] - max(s["end"] for s in r["steps"].values() if "end" in s) for r in runs]
    floor_bytes = sum(f["bytes"] for f in floors.values())
    return {
        "rows": sum(m["rows"] for m in report["months"]), "months": len(report["months"]), "runs": len(runs),
        "runs_failed": sum(r["status"] != "SUCCESS" for r in runs),
        "partitions_run_twice": sorted({p for p in partitions if partitions.count(p) > 1}),
        "months_merged": len(merged), "months_exact": sum(exact.values()),
        "months_not_exact": sorted(f for f, ok in exact.items() if not ok),
        "wall_s": round(wall, 1), "floors_sum_s": round(floors_s, 1), "wall_x_floors": round(wall / floors_s, 2),
        "load_average": report.get("load"),
        **({"cpu_s": report["cpu_s"], "floors_cpu_s": round(sum(f["cpu_s"] for f in floors.values()), 1),
            "cpu_x_floors": round(report["cpu_s"] / sum(f["cpu_s"] for f in floors.values()), 2)}
           if "cpu_s" in report else {}),
        # Where that CPU went: the run workers (their steps and each run's start-up), and the
        # processes that serve every run (webserver, daemon, code servers).
        **({"cpu_s_by_role": report["cpu_s_by_role"],
            "run_worker_cpu_s_mean": round(report["cpu_s_by_role"].get(RUN_WORKER, 0) / len(runs), 1)}
           if "cpu_s_by_role" in report else {}),
        # The backfill daemon's pick-up (its loop sleeps 30 s), then the run queue's and the run's start.
        "first_run_created_after_launch_s": round(min(r["created"] for r in runs) - launched, 1),
        "first_run_started_after_launch_s": round(min(r["started"] for r in runs) - launched, 1),
        "first_warehouse_step_after_launch_s": round(first_pooled - launched, 1),
        "backfill_completed_after_last_run_s": round(report["backfill_completed"] - last_end, 1),
        "warehouse_slot_busy_s": round(busy, 1), "warehouse_slot_idle_s": round(wall - busy, 1),
        "warehouse_slot_idle_pct": round(100 * (wall - busy) / wall, 1),
        "warehouse_slot_idle_after_first_step_pct": round(100 * (last_end - first_pooled - busy) / wall, 1),
        "step_s_total": {k: round(sum(v), 1) for k, v in sorted(by_kind.items())},
        "lock_wait_s_total": round(sum(s["lock_taken"] - s["start"] for _, s in steps if "lock_taken" in s), 1),
        "run_queued_s_mean": round(sum(r["started"] - r["created"] for r in runs) / len(runs), 1),
        "run_start_to_first_step_s_mean": round(sum(overhead_in) / len(runs), 2),
        "run_start_to_first_step_s_max": round(max(overhead_in), 2),
        "run_last_step_to_end_s_mean": round(sum(overhead_out) / len(runs), 2),
        "run_last_step_to_end_s_max": round(max(overhead_out), 2),
        "peak_rss_mb": report["peak_rss_mb"], "run_peak_rss_mb": report["run_peak_rss_mb"],
        "warehouse_mib": round(report["warehouse_bytes"] / 2**20, 1),
        "floor_tables_mib": round(floor_bytes / 2**20, 1),
        "warehouse_x_floors": round(report["warehouse_bytes"] / floor_bytes, 2),
        "bucket_mib": round(report["bucket_bytes"] / 2**20, 1), "mirror_mib": round(report["mirror_bytes"] / 2**20, 1),
        **_analytics(report, wall),
    }


def _analytics(report: dict, wall: float) -> dict:
    builds, cli = report.get("analytics_builds"), report.get("analytics_cli")
    if not builds:
        return {}
    after = [b for b in builds if b["created"] >= max(r["ended"] for r in report["runs"]) - 60]
    build_s = after[-1]["ended"] - after[-1]["started"]
    return {
        "analytics_builds": len(builds), "analytics_builds_during_backfill": len(builds) - len(after),
        "analytics_build_status": after[-1]["status"], "analytics_build_s": round(build_s, 1),
        "analytics_build_x_backfill": round(build_s / wall, 3),
        "dbt_full_build_s": cli["full"]["wall_s"], "dbt_one_month_build_s": cli["one_month"]["wall_s"],
        "dbt_one_month_x_full": round(cli["one_month"]["wall_s"] / cli["full"]["wall_s"], 3),
        "dbt_one_month_cpu_x_full": round(cli["one_month"]["cpu_s"] / cli["full"]["cpu_s"], 3),
    }


def write(report: dict, out: Path) -> dict:
    report["summary"] = summary = summarise(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "backfill.json").write_text(json.dumps(report, indent=1) + "\n")
    loaded = report["loaded_rows"]
    lines = [f"# Backfill 2019-2020, green and yellow, scale {report['scale']}", "",
             "| measure | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in summary.items()]
    lines += ["", "| month | rows | loaded | floor s |", "|---|---:|---:|---:|"]
    lines += [f"| {m['file']} | {m['rows']:,} | {loaded.get(m['file'], 0):,} | {report['floors'][m['file']]['wall_s']} |"
              for m in report["months"]]
    (out / "backfill.md").write_text("\n".join(lines) + "\n")
    return report
