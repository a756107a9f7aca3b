"""The operators' CLI on the GCS + BigQuery target, against fake-gcs-server and local-bigquery on
127.0.0.1: the course's Kestra table refused, adopted and reloaded; fresh-start of one colour.

The Kestra table is made as the course's flow makes it (kestra_anchor.md 1.4): its exact DDL, the
CSV uploaded to the bucket's root, typed columns (a load job: no emulator has external tables),
the 5-column MD5 as BYTES and the `filename` value, then its MERGE ... WHEN NOT MATCHED THEN INSERT.
"""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import uuid

import pytest
from google.cloud import bigquery, storage

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.rowid import from_hex_digest, hex_id
from taxi_pipeline.lib.warehouses.bigquery.admin import check_main_table
from taxi_pipeline.lib.warehouses.shape import ForeignTableError
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.support import MIRROR, reference_ids
from taxi_pipeline_tests.test_operate import cli, environment, execute_job, records

pytestmark = pytest.mark.gcp
KESTRA_GREEN_COLUMNS = (
    "VendorID STRING, lpep_pickup_datetime TIMESTAMP, lpep_dropoff_datetime TIMESTAMP, store_and_fwd_flag STRING, "
    "RatecodeID STRING, PULocationID STRING, DOLocationID STRING, passenger_count INT64, trip_distance NUMERIC, "
    "fare_amount NUMERIC, extra NUMERIC, mta_tax NUMERIC, tip_amount NUMERIC, tolls_amount NUMERIC, "
    "ehail_fee NUMERIC, improvement_surcharge NUMERIC, total_amount NUMERIC, payment_type INTEGER, "
    "trip_type STRING, congestion_surcharge NUMERIC"
)


@pytest.fixture
def gcp_env(gcp_emulators, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    return environment(tmp_path, **gcp_emulators, TAXI_TARGET="gcp", GCP_BUCKET_NAME=f"taxi-{suffix}",
                       TAXI_DATASET=f"zoomcamp_{suffix}")


def load_the_kestra_way(bq: bigquery.Client, gcs: storage.Client, bucket: str, dataset: str, months: list[str]) -> None:
    main = f"`{PROJECT}.{dataset}.green_tripdata`"
    bq.create_dataset(dataset, exists_ok=True)
    bq.query(f"CREATE TABLE IF NOT EXISTS {main} ( unique_row_id BYTES, filename STRING, {KESTRA_GREEN_COLUMNS} ) "
             "PARTITION BY DATE(lpep_pickup_datetime);").result()
    if not gcs.bucket(bucket).exists():
        gcs.create_bucket(bucket)
    schema = [bigquery.SchemaField(c.split()[0], c.split()[1].replace("INTEGER", "INT64")) for c in KESTRA_GREEN_COLUMNS.split(", ")]
    names = ["unique_row_id", "filename", *(f.name for f in schema)]
    for month in months:
        file, table = f"green_tripdata_{month}.csv", f"{PROJECT}.{dataset}.green_tripdata_{month.replace('-', '_')}"
        csv = gzip.decompress((MIRROR / "green" / f"{file}.gz").read_bytes())
        gcs.bucket(bucket).blob(file).upload_from_string(csv, content_type="text/csv")  # at the root, as Kestra does
        bq.load_table_from_uri(f"gs://{bucket}/{file}", f"{table}_ext", job_config=bigquery.LoadJobConfig(
            schema=schema, source_format="CSV", skip_leading_rows=1, write_disposition="WRITE_TRUNCATE")).result()
        bq.query(f"""CREATE OR REPLACE TABLE `{table}` AS SELECT MD5(CONCAT(
            COALESCE(CAST(VendorID AS STRING), ""), COALESCE(CAST(lpep_pickup_datetime AS STRING), ""),
            COALESCE(CAST(lpep_dropoff_datetime AS STRING), ""), COALESCE(CAST(PULocationID AS STRING), ""),
            COALESCE(CAST(DOLocationID AS STRING), ""))) AS unique_row_id, "{file}" AS filename, *
            FROM `{table}_ext`;""").result()
        bq.query(f"MERGE INTO {main} T USING `{table}` S ON T.unique_row_id = S.unique_row_id WHEN NOT MATCHED THEN "
                 f"INSERT ({', '.join(names)}) VALUES ({', '.join('S.' + n for n in names)});").result()


def rows(bq: bigquery.Client, sql: str) -> list[tuple]:
    return [tuple(r.values()) for r in bq.query(sql).result()]


def test_a_kestra_table_is_refused_adopted_with_every_row_then_reloaded_exactly(bq, gcp_env):
    dataset, bucket = gcp_env["TAXI_DATASET"], gcp_env["GCP_BUCKET_NAME"]
    main = f"`{PROJECT}.{dataset}.green_tripdata`"
    load_the_kestra_way(bq, storage.Client(project=PROJECT), bucket, dataset, ["2019-01", "2020-04"])
    before = collections.Counter(rows(bq, f"SELECT TO_HEX(unique_row_id), filename, trip_distance FROM {main}"))
    assert sum(before.values()) == 99 + 35_612
    with pytest.raises(ForeignTableError) as foreign:
        check_main_table(bq, dataset, GREEN)
    print(foreign.value)
    assert str(foreign.value).splitlines()[:5] == [
        f"{PROJECT}.{dataset}.green_tripdata is not this project's green main table, so nothing was written to it:",
        "  - column file_month DATE is missing",
        "  - partitioned by DAY(lpep_pickup_datetime), expected PARTITION BY DAY(file_month)",
        "  - not clustered, expected CLUSTER BY lpep_pickup_datetime, PULocationID",
        "It looks like the table the course's Kestra flow made (its ids are 16-byte MD5s).",
    ]
    assert "python -m taxi_pipeline adopt green" in str(foreign.value) and "TAXI_DATASET" in str(foreign.value)
    assert "(not this project's layout" in cli("counts", env=gcp_env).stdout
    # The job refuses the foreign table before writing anything, and says the two ways out.
    output = execute_job("green_taxi_job", "2020-04-01", gcp_env, succeed=False)
    assert "green_tripdata is not this project's green main table" in output and "adopt green" in output
    assert collections.Counter(rows(bq, f"SELECT TO_HEX(unique_row_id), filename, trip_distance FROM {main}")) == before

    adopted = cli("adopt", "green", env=gcp_env)
    print(adopted.stdout)
    assert adopted.returncode == 0, adopted.stderr
    assert check_main_table(bq, dataset, GREEN) == ()
    table = bq.get_table(f"{PROJECT}.{dataset}.green_tripdata")
    assert (table.time_partitioning.field, table.clustering_fields) == (
        "file_month", ["lpep_pickup_datetime", "PULocationID"])
    after = collections.Counter(rows(bq, f"SELECT TO_HEX(unique_row_id), filename, trip_distance FROM {main}"))
    # Every row, its values, and its id: the same MD5, its bytes in this project's order.
    before = collections.Counter({(hex_id(from_hex_digest(i)), f, d): n for (i, f, d), n in before.items()})
    assert after == before
    assert rows(bq, f"SELECT DISTINCT filename, file_month FROM {main} ORDER BY 1") == [
        ("green_tripdata_2019-01.csv", dt.date(2019, 1, 1)),
        ("green_tripdata_2020-04.csv", dt.date(2020, 4, 1)),
    ]
    left = {t.table_id for t in bq.list_tables(dataset)}
    assert "green_tripdata__adopting" not in left and "green_tripdata__backup" not in left

    execute_job("green_taxi_job", "2020-04-01", gcp_env)
    ids = dict(rows(bq, f"SELECT filename, ARRAY_AGG(TO_HEX(unique_row_id)) FROM {main} GROUP BY filename"))
    april = "green_tripdata_2020-04.csv"
    assert sorted(ids[april]) == sorted(reference_ids(april, MIRROR / "green" / f"{april}.gz"))
    assert collections.Counter(ids["green_tripdata_2019-01.csv"]) == collections.Counter(
        {i: n for (i, f, _), n in before.items() if f == "green_tripdata_2019-01.csv"})

    # This project's earlier layout kept the ids as the MD5's hex: refused, and adopted the same way.
    loaded = collections.Counter(rows(bq, f"SELECT TO_HEX(unique_row_id), filename, trip_distance FROM {main}"))
    earlier = f"`{PROJECT}.{dataset}.green_tripdata_earlier`"
    bq.query(f"CREATE TABLE {earlier} PARTITION BY file_month CLUSTER BY unique_row_id AS SELECT "
             r"REGEXP_REPLACE(REVERSE(TO_HEX(unique_row_id)), r'(.)(.)', r'\2\1') AS unique_row_id, "
             f"* EXCEPT (unique_row_id) FROM {main}").result()
    bq.delete_table(f"{PROJECT}.{dataset}.green_tripdata")
    bq.query(f"CREATE TABLE {main} PARTITION BY file_month CLUSTER BY unique_row_id AS SELECT * FROM {earlier}").result()
    with pytest.raises(ForeignTableError) as foreign:
        check_main_table(bq, dataset, GREEN)
    assert "  - column unique_row_id is STRING, expected BYTES" in str(foreign.value)
    assert "this project's earlier layout" in str(foreign.value)
    adopted = cli("adopt", "green", env=gcp_env)
    assert adopted.returncode == 0, adopted.stderr
    assert "unique_row_id: STRING -> BYTES" in adopted.stdout and "file_month: added" not in adopted.stdout
    assert collections.Counter(rows(bq, f"SELECT TO_HEX(unique_row_id), filename, trip_distance FROM {main}")) == loaded


def test_fresh_start_deletes_one_colour_and_nothing_else(bq, gcp_env, tmp_path):
    dataset, bucket = gcp_env["TAXI_DATASET"], gcp_env["GCP_BUCKET_NAME"]
    execute_job("green_taxi_job", "2019-01-01", gcp_env)
    execute_job("yellow_taxi_job", "2020-07-01", gcp_env)
    gcs = storage.Client(project=PROJECT)
    gcs.bucket(bucket).blob("green_tripdata_2019-01.csv").upload_from_string(b"the course's copy, at the root")
    bq.query(f"CREATE TABLE `{PROJECT}.{dataset}.green_tripdata_2019_01_ext` AS SELECT 1 AS x").result()

    def state():
        return (
            {t.table_id: bq.get_table(t).num_rows for t in bq.list_tables(dataset)},
            sorted(b.name for b in gcs.list_blobs(bucket)),
            records(tmp_path / "dagster", ["green_raw_file", "green_tripdata", "yellow_raw_file", "yellow_tripdata"]),
        )

    before = state()
    # (Whether a month's staging table outlives its merge is the warehouse's choice.)
    assert {"green_tripdata", "green_tripdata_2019_01_ext", "yellow_tripdata"} <= set(before[0])

    dry = cli("fresh-start", "green", env=gcp_env)
    print(dry.stdout)
    assert dry.returncode == 0 and state() == before
    assert f"{PROJECT}.{dataset}.green_tripdata_2019_01_ext " in dry.stdout and "green/green_tripdata_2019-01.csv.gz " in dry.stdout

    done = cli("fresh-start", "green", "--yes", env=gcp_env)
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    tables, objects, recorded = state()
    assert tables == {t: n for t, n in before[0].items() if t.startswith("yellow")}
    assert objects == ["green_tripdata_2019-01.csv", "yellow/yellow_tripdata_2020-07.csv.gz"]
    assert recorded["green_tripdata"] == recorded["green_raw_file"] == ([], 0)
    assert recorded["yellow_tripdata"] == before[2]["yellow_tripdata"] == (["2020-07-01"], 2)


def test_each_bigquery_step_shows_what_its_jobs_cost(bq_proxy, gcp_env, tmp_path):
    """The staging and merge materializations carry their jobs' statistics (bytes processed and
    billed, slot-ms) and the ids of exactly the jobs the pipeline sent (as the proxy recorded them)."""
    import dagster as dg

    execute_job("green_taxi_job", "2019-01-01", gcp_env)
    sent = {(r.response or {}).get("jobReference", {}).get("jobId"): r.body for r in bq_proxy.requests
            if r.method == "POST" and r.path.endswith("/jobs") and isinstance(r.response, dict)}
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        for key, expected in (("green_staging", ("load", "query")), ("green_tripdata", ("query",))):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            metadata = event.asset_materialization.metadata
            ids = metadata["bigquery_job_ids"].value.split(", ")
            assert metadata["bigquery_jobs"].value == len(ids) >= len(expected)
            assert {"bigquery_bytes_processed", "bigquery_bytes_billed", "bigquery_slot_ms"} <= set(metadata)
            kinds = [next(iter(sent[job]["configuration"])) for job in ids]  # every id is a job the pipeline sent
            assert set(kinds) == set(expected)
        merged = [sent[job]["configuration"]["query"]["query"] for job in ids]
        assert any(statement.startswith("MERGE ") and " ON FALSE " in statement for statement in merged)


def test_a_bucket_in_another_location_fails_the_load_naming_the_dataset_location_not_the_file(bq_proxy, gcp_env):
    """The emulators have one location, so BigQuery's refusal is injected into the load job's answer
    (the text BigQuery gives a job across locations); the message must not blame the file."""
    refusal = "Cannot read and write in different locations: source: EU, destination: US"

    def done_load(r) -> bool:
        job = r.response if isinstance(r.response, dict) else {}
        return "load" in job.get("configuration", {}) and job.get("status", {}).get("state") == "DONE"

    def refused(job: dict) -> dict:
        error = {"reason": "invalid", "message": refusal}
        return {**job, "status": {"state": "DONE", "errorResult": error, "errors": [error]}}

    bq_proxy.rewrite_next(done_load, refused)
    output = execute_job("green_taxi_job", "2019-01-01", gcp_env, succeed=False)
    assert "DatasetError" in output and refusal in output
    assert f"into dataset {PROJECT}.{gcp_env['TAXI_DATASET']}, which is in US" in output
    assert "preflight` shows both locations" in output and "InvalidFileError" not in output
