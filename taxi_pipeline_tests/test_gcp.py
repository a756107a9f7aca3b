"""The GCS + BigQuery target, through the real google-cloud-storage and google-cloud-bigquery
clients (through the target's resource, as a run uses them), against fake-gcs-server and local-bigquery on 127.0.0.1.

Where the emulators differ from BigQuery (production SQL is kept right, not bent to them):
- No emulator supports external tables, so production stages with load jobs (faster anyway).
- local-bigquery reports no `dml_stats` for MERGE; inserted/deleted counts are then derived from
  `num_dml_affected_rows` and the month's row counts before and after (`_dml_counts`).
- local-bigquery prints `CAST(NUMERIC '1.50' AS STRING)` as `1.500000000` (BigQuery: `1.5`): ids
  hash the raw text of each field, never casts, so this does not reach the ids.
- A load job's errors carry byte positions, not line numbers, on BigQuery and the emulator alike;
  a bad value is reported by column and value.
- local-bigquery does not enforce BigQuery's one-DML-per-table serialisation, so the retry on
  "could not serialize access" is not exercised here.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from google.cloud import bigquery, storage

from taxi_pipeline.defs.gcp_target import GcpTargetResource
from taxi_pipeline.defs.resources import SourceResource
from taxi_pipeline.lib.colours import GREEN, YELLOW
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.parquet_eras import write_era
from taxi_pipeline_tests.helpers.support import (
    MIRROR,
    TLC,
    copy_mirror,
    load_month,
    make_resources,
    query,
    read_csv_gz,
    reference_ids,
    write_csv_gz,
)

pytestmark = pytest.mark.gcp
ROOT = Path(__file__).parents[1]


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    return {"bucket": f"taxi-{suffix}", "dataset": f"zoomcamp_{suffix}"}


def gcp_resources(base_url: str, bucket: str, dataset: str, tlc_url: str | None = None, mode: str = "auto") -> dict:
    return {
        "source": SourceResource(base_url=base_url, tlc_url=tlc_url or TLC.as_uri(), mode=mode, attempts=2,
                                 first_retry_delay_s=0.01, timeout_s=10),
        "target": GcpTargetResource(project=PROJECT, bucket=bucket, dataset=dataset, location="US",
                                    bigquery_endpoint=os.environ["BIGQUERY_EMULATOR_HOST"]),
    }


def _counts(bq, dataset: str, colour=GREEN) -> dict[str, tuple[int, int]]:
    rows = bq.query(f"SELECT filename, COUNT(*), COUNT(DISTINCT unique_row_id) FROM `{PROJECT}.{dataset}.{colour.main_table}` "
                    "GROUP BY filename").result()
    return {r[0]: (r[1], r[2]) for r in rows}


def _ids(bq, dataset: str, file_name: str) -> list[str]:
    job = bq.query(f"SELECT TO_HEX(unique_row_id) FROM `{PROJECT}.{dataset}.green_tripdata` WHERE filename = @f",
                   job_config=bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("f", "STRING", file_name)]))
    return [r[0] for r in job.result()]


def _merge_meta(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["green_tripdata"]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_two_green_months_exactly_once_rerun_adds_nothing_object_in_bucket(gcp_emulators, http_mirror, bq, names):
    resources = gcp_resources(http_mirror.url, **names)
    for partition in ("2020-04-01", "2020-10-01"):
        result = load_month(GREEN, partition, resources)
        assert result.success
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {"month_matches_source": True, "schema_known": True}, checks  # both ran, both passed
    expected = {"green_tripdata_2020-04.csv": (35_612, 35_612), "green_tripdata_2020-10.csv": (95_120, 95_120)}
    assert _counts(bq, names["dataset"]) == expected
    again = load_month(GREEN, "2020-10-01", resources)
    assert (_merge_meta(again)["inserted"], _merge_meta(again)["deleted"]) == (0, 0)
    assert _counts(bq, names["dataset"]) == expected

    blob = storage.Client(project=PROJECT).bucket(names["bucket"]).get_blob("green/green_tripdata_2020-10.csv.gz")
    source = (MIRROR / "green" / "green_tripdata_2020-10.csv.gz").read_bytes()
    assert blob.size == len(source) and blob.metadata["rows"] == "95120"
    assert blob.download_as_bytes() == source


def test_a_changed_file_replaces_its_month_exactly(gcp_emulators, tmp_path, bq, names):
    mirror = copy_mirror(tmp_path / "mirror")
    resources = gcp_resources(mirror.as_uri(), **names)
    assert load_month(GREEN, "2020-04-01", resources).success
    assert load_month(GREEN, "2019-10-01", resources).success
    path = mirror / "green" / "green_tripdata_2020-04.csv.gz"
    header, rows = read_csv_gz(path)
    del rows[:250]
    rows[0][header.index("tip_amount")] = "9.99"
    write_csv_gz(path, header, rows)
    result = load_month(GREEN, "2020-04-01", resources)
    assert (_merge_meta(result)["inserted"], _merge_meta(result)["deleted"]) == (1, 251)
    assert sorted(_ids(bq, names["dataset"], "green_tripdata_2020-04.csv")) == sorted(
        reference_ids("green_tripdata_2020-04.csv", path))
    assert _counts(bq, names["dataset"])["green_tripdata_2019-10.csv"] == (1_308, 1_308)


def test_both_targets_give_the_same_ids_and_values(gcp_emulators, http_mirror, tmp_path, bq, names):
    local_home = tmp_path / "local"
    assert load_month(YELLOW, "2020-01-01", make_resources(local_home, http_mirror.url)).success
    assert load_month(YELLOW, "2020-01-01", gcp_resources(http_mirror.url, **names)).success
    local, cloud = _rows_by_hex_id(local_home, bq, names["dataset"], YELLOW)
    assert len(local) == 999 and local.keys() == cloud.keys()
    assert local == cloud


@pytest.mark.parametrize(
    ("colour", "month", "era"),
    [(GREEN, "2022-01", None), (GREEN, "2025-01", None), (YELLOW, "2023-06", "yellow_B")],
)
def test_a_parquet_month_gives_the_same_ids_and_values_on_both_targets(gcp_emulators, tmp_path, bq, names, colour, month, era):
    """Real green TLC files of eras A (double codes, null-typed ehail_fee) and C (cbd_congestion_fee);
    a yellow month of era B (`Airport_fee`, int32 codes) built from real yellow rows."""
    tlc = TLC
    if era:
        header, rows = read_csv_gz(MIRROR / "yellow" / "yellow_tripdata_2021-01.csv.gz")
        tlc = tmp_path / "tlc"
        write_era(tlc / f"yellow_tripdata_{month}.parquet", era, header, rows[:3000], {"airport_fee": 1.25})
    local_home = tmp_path / "local"
    assert load_month(colour, f"{month}-01", make_resources(local_home, MIRROR.as_uri(), tlc.as_uri())).success
    result = load_month(colour, f"{month}-01", gcp_resources(MIRROR.as_uri(), **names, tlc_url=tlc.as_uri()))
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert result.success and checks == {"month_matches_source": True, "schema_known": True}, checks
    local, cloud = _rows_by_hex_id(local_home, bq, names["dataset"], colour)
    assert local.keys() == cloud.keys() and len(local) == {"2022-01": 62_495, "2025-01": 48_326}.get(month, 3000)
    assert local == cloud


def _rows_by_hex_id(local_home, bq, dataset: str, colour) -> tuple[dict, dict]:
    """Both targets' rows by id, the ids compared as hex (a UHUGEINT in DuckDB, BYTES in BigQuery)."""
    columns = ", ".join(["filename", *(c.name for c in colour.columns)])
    local = {r[0]: _normal(r) for r in query(
        local_home, f"SELECT printf('%032x', unique_row_id), {columns} FROM zoomcamp.{colour.main_table}")}
    cloud = {r[0]: _normal(tuple(r.values())) for r in bq.query(
        f"SELECT TO_HEX(unique_row_id), {columns} FROM `{PROJECT}.{dataset}.{colour.main_table}`").result()}
    return local, cloud


def _normal(row: tuple) -> tuple:
    """One representation for both: naive UTC timestamps, decimals without trailing zeros."""
    def one(value):
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)
        if isinstance(value, decimal.Decimal):
            return value.normalize()
        return value
    return tuple(one(v) for v in row)


# Bad input on this target (every case; table, bucket and failed step): `test_gcp_bad_input.py`.


def test_job_execute_runs_on_the_gcp_target_with_no_code_change(gcp_emulators, http_mirror, tmp_path, bq, names):
    env = {**os.environ, **gcp_emulators, "TAXI_TARGET": "gcp", "GCP_BUCKET_NAME": names["bucket"],
           "TAXI_DATASET": names["dataset"], "TAXI_SOURCE_URL": http_mirror.url, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "taxi_pipeline.definitions",
         "-j", "green_taxi_job", "--tags", json.dumps({"dagster/partition": "2020-04-01"})],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _counts(bq, names["dataset"]) == {"green_tripdata_2020-04.csv": (35_612, 35_612)}


def test_identical_rows_get_the_reference_ids_on_bigquery(gcp_emulators, tmp_path, bq, names):
    header, rows = read_csv_gz(MIRROR / "green" / "green_tripdata_2019-01.csv.gz")
    path = write_csv_gz(tmp_path / "mirror" / "green" / "green_tripdata_2019-01.csv.gz", header,
                        rows[:20] + [rows[2]] * 3 + [rows[11]])
    assert load_month(GREEN, "2019-01-01", gcp_resources((tmp_path / "mirror").as_uri(), **names)).success
    ids = _ids(bq, names["dataset"], "green_tripdata_2019-01.csv")
    assert len(set(ids)) == 24 and sorted(ids) == sorted(reference_ids("green_tripdata_2019-01.csv", path))
