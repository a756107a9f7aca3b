"""The benchmark scripts end to end at a small size, so they cannot rot: `bench` builds a month
from the bundled real rows, serves it over loopback HTTP, runs the floors, the job, dlt and merge
growth; `backfill` builds the course's 48 months at 1/2000 of their rows and runs them as one
backfill through a real webserver and daemon."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from benchmarks.backfill import run as run_backfill
from benchmarks.bench import run

pytestmark = pytest.mark.bench


def test_the_benchmark_runs_and_writes_its_results(tmp_path):
    report = run(rows=3_000, parquet_rows=2_000, months=2, out=tmp_path / "out", work=tmp_path / "work",
                 double=True, dlt=True)
    assert set(report["steps"]) == {
        "floor", "floor_with_ids", "ours", "ours_rerun", "ours_2x_rows", "floor_parquet", "floor_with_ids_parquet",
        "ours_parquet", "ours_parquet_rerun", "dlt_merge", "dlt_merge_arrow",
    }
    assert "ours_parquet_rerun_vs_floor_parquet_wall" in report["ratios"]
    assert all(s["cpu_s"] > 0 for s in report["steps"].values())
    assert "yellow_staging" in report["ours_parquet_step_s"]
    assert report["disk"]["ours_warehouse_mb"] > 0 and report["disk"]["floor_table_mb"] > 0
    assert report["disk"]["ours_bucket_mb"] > 0 and "warehouse_vs_floor_bytes" in report["ratios"]
    assert set(report["ours_step_s"]) >= {"yellow_raw_file", "yellow_staging", "yellow_tripdata"}
    assert report["merges"][0]["rerun_inserted"] == 0 and report["merges"][-1]["rerun_inserted"] == 0
    assert [m["table_rows"] for m in report["merges"]] == [3_000, 6_000]
    assert all(m["inserted"] == 3_000 for m in report["merges"])
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["ratios"] == report["ratios"] and "ours_vs_floor_wall" in saved["ratios"]
    assert "| ours |" in (tmp_path / "out" / "results.md").read_text()
    assert (tmp_path / "out" / "results.png").read_bytes()[:4] == b"\x89PNG"


# 48 floors and 24 runs take ~5 minutes on a quiet 2-core machine; the suite's 600 s is for one test
# of one thing, so this one, a whole backfill, gets a stall guard of its own.
@pytest.mark.timeout(3600)
def test_the_backfill_benchmark_loads_every_month_exactly_once_through_the_daemon(tmp_path):
    report = run_backfill(Fraction(1, 2000), tmp_path / "out", tmp_path / "work", tmp_path / "pool")
    summary = report["summary"]
    assert summary["months"] == 48 and summary["rows"] == sum(m["rows"] for m in report["months"]) > 50_000
    assert summary["months_exact"] == 48 and summary["months_merged"] == 48, summary["months_not_exact"]
    assert summary["runs_failed"] == 0 and summary["partitions_run_twice"] == []
    assert report["backfill_status"] == "COMPLETED_SUCCESS"
    assert summary["wall_s"] > 0 and summary["floors_sum_s"] > 0 and 0 <= summary["warehouse_slot_idle_pct"] <= 100
    assert summary["peak_rss_mb"] > summary["run_peak_rss_mb"] > 0 and summary["bucket_mib"] > 0
    assert "| yellow_tripdata_2020-12.csv |" in (tmp_path / "out" / "backfill.md").read_text()
    # The analytics models: one build, launched by their sensor once the backfill had ended.
    assert summary["analytics_builds"] == 1 and summary["analytics_builds_during_backfill"] == 0
    assert summary["analytics_build_status"] == "SUCCESS"
    assert summary["dbt_full_build_s"] > 0 and summary["dbt_one_month_build_s"] > 0
