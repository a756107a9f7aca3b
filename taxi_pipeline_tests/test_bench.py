"""The benchmark script end to end on a small month, so it cannot rot: builds the month from the
bundled real rows, serves it over loopback HTTP, runs the floor, the job, dlt and merge growth."""

from __future__ import annotations

import json

import pytest

from benchmarks.bench import run

pytestmark = pytest.mark.bench


def test_the_benchmark_runs_and_writes_its_results(tmp_path):
    report = run(rows=3_000, parquet_rows=2_000, months=2, out=tmp_path / "out", work=tmp_path / "work",
                 double=True, dlt=True)
    assert set(report["steps"]) == {
        "floor", "floor_with_ids", "ours", "ours_rerun", "ours_2x_rows", "floor_parquet", "ours_parquet",
        "dlt_merge", "dlt_merge_arrow",
    }
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
