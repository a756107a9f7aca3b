"""The operators' CLI and `dagster job execute` as subprocesses, and each target as the tests that
hold both to one behaviour see it (`test_operate_both.py`): `Local` (a folder and a DuckDB file)
and `Gcp` (GCS + BigQuery on the emulators), each with its environment for the CLI and the jobs,
the course's Kestra table made the way the course's flow makes it on that engine, and what a test
reads back: rows and ids per file, tables, the bucket's objects.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import dagster as dg
import duckdb

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.warehouses.duckdb import admin as duckdb_admin
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.support import MIRROR

ROOT = Path(__file__).parents[2]
Row = tuple[str, str, object]  # an id as 32 hex digits, the file it came from, its trip_distance


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "dagster").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAXI_", "GCP_"))}
    return {**env, "DAGSTER_HOME": str(tmp_path / "dagster"), "TAXI_HOME": str(tmp_path / "home"),
            "TAXI_SOURCE_URL": MIRROR.as_uri(), **extra}


def gcp_environment(tmp_path: Path, emulators: dict[str, str]) -> dict[str, str]:
    """The GCP target on the emulators, with a bucket and a dataset of its own."""
    suffix = uuid.uuid4().hex[:8]
    return environment(tmp_path, **emulators, TAXI_TARGET="gcp", GCP_BUCKET_NAME=f"taxi-{suffix}",
                       TAXI_DATASET=f"zoomcamp_{suffix}")


def cli(*args: str, env: dict[str, str], module: str = "taxi_pipeline") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def execute_job(job: str, partition: str, env: dict[str, str], succeed: bool = True) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "taxi_pipeline.definitions",
         "-j", job, "--tags", json.dumps({"dagster/partition": partition})],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert (done.returncode == 0) == succeed, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def records(dagster_home: Path, keys: list[str]) -> dict[str, tuple[list[str], int]]:
    """Materialized partitions and check-execution records per asset, read from the instance."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return {
            key: (sorted(instance.get_materialized_partitions(dg.AssetKey(key))), sum(
                len(instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(dg.AssetKey(key), name), limit=1000))
                for name in ("month_matches_source", "schema_known")))
            for key in keys
        }


def tables(path: Path) -> dict[str, int]:
    """Rows per table of the DuckDB file's `zoomcamp` schema."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [n for (n,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'zoomcamp'").fetchall()]
        return {n: con.execute(f'SELECT count(*) FROM zoomcamp."{n}"').fetchone()[0] for n in names}


# The course's Kestra table (kestra_anchor.md 1.4) on DuckDB: its DDL in DuckDB types, ids as 16 MD5
# bytes, amounts and counts in the types of the course's Postgres flow, so adopt has real casts to make.
KESTRA_GREEN_COLUMNS_DUCKDB = (
    "VendorID VARCHAR, lpep_pickup_datetime TIMESTAMP, lpep_dropoff_datetime TIMESTAMP, store_and_fwd_flag VARCHAR, "
    "RatecodeID VARCHAR, PULocationID VARCHAR, DOLocationID VARCHAR, passenger_count INTEGER, trip_distance DOUBLE, "
    "fare_amount DOUBLE, extra DOUBLE, mta_tax DOUBLE, tip_amount DOUBLE, tolls_amount DOUBLE, ehail_fee DOUBLE, "
    "improvement_surcharge DOUBLE, total_amount DOUBLE, payment_type INTEGER, trip_type VARCHAR, congestion_surcharge DOUBLE"
)
# Kestra's key: 5 columns cast to text (BigQuery prints a TIMESTAMP as `YYYY-MM-DD HH:MM:SS+00`), MD5 as bytes.
KESTRA_KEY = (
    "unhex(md5(concat(coalesce(VendorID, ''), coalesce(strftime(lpep_pickup_datetime, '%Y-%m-%d %H:%M:%S') || '+00', ''), "
    "coalesce(strftime(lpep_dropoff_datetime, '%Y-%m-%d %H:%M:%S') || '+00', ''), coalesce(PULocationID, ''), "
    "coalesce(DOLocationID, ''))))"
)
# ... and on BigQuery: its exact DDL.
KESTRA_GREEN_COLUMNS_BIGQUERY = (
    "VendorID STRING, lpep_pickup_datetime TIMESTAMP, lpep_dropoff_datetime TIMESTAMP, store_and_fwd_flag STRING, "
    "RatecodeID STRING, PULocationID STRING, DOLocationID STRING, passenger_count INT64, trip_distance NUMERIC, "
    "fare_amount NUMERIC, extra NUMERIC, mta_tax NUMERIC, tip_amount NUMERIC, tolls_amount NUMERIC, "
    "ehail_fee NUMERIC, improvement_surcharge NUMERIC, total_amount NUMERIC, payment_type INTEGER, "
    "trip_type STRING, congestion_surcharge NUMERIC"
)


def create_kestra_green_table(con: duckdb.DuckDBPyConnection, dataset: str, months: list[str]) -> None:
    """The course's main table, loaded month by month the Kestra way: key the rows, then MERGE
    WHEN NOT MATCHED THEN INSERT (every row of a month's first load, in-file duplicates too)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {dataset}")
    con.execute(f"CREATE TABLE {dataset}.green_tripdata (unique_row_id BLOB, filename VARCHAR, {KESTRA_GREEN_COLUMNS_DUCKDB})")
    types = ", ".join(f"'{c.split()[0]}': '{c.split()[1]}'" for c in KESTRA_GREEN_COLUMNS_DUCKDB.split(", "))
    for month in months:
        file = f"green_tripdata_{month}.csv"
        path = MIRROR / "green" / f"{file}.gz"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE month AS SELECT {KESTRA_KEY} AS unique_row_id, $file AS filename, * "
            f"FROM read_csv($path, header = true, auto_detect = false, columns = {{{types}}})",
            {"file": file, "path": str(path)},
        )
        con.execute(f"INSERT INTO {dataset}.green_tripdata SELECT * FROM month "
                    f"WHERE unique_row_id NOT IN (SELECT unique_row_id FROM {dataset}.green_tripdata)")


def load_the_kestra_way(bq, gcs, bucket: str, dataset: str, months: list[str]) -> None:
    """The course's flow on BigQuery (kestra_anchor.md 1.4): its exact DDL, the CSV uploaded to the
    bucket's root, typed columns (a load job: no emulator has external tables), the 5-column MD5 as
    BYTES and the `filename` value, then its MERGE ... WHEN NOT MATCHED THEN INSERT."""
    from google.cloud import bigquery

    main = f"`{PROJECT}.{dataset}.green_tripdata`"
    bq.create_dataset(dataset, exists_ok=True)
    bq.query(f"CREATE TABLE IF NOT EXISTS {main} ( unique_row_id BYTES, filename STRING, {KESTRA_GREEN_COLUMNS_BIGQUERY} ) "
             "PARTITION BY DATE(lpep_pickup_datetime);").result()
    if not gcs.bucket(bucket).exists():
        gcs.create_bucket(bucket)
    schema = [bigquery.SchemaField(c.split()[0], c.split()[1].replace("INTEGER", "INT64"))
              for c in KESTRA_GREEN_COLUMNS_BIGQUERY.split(", ")]
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


class Target(Protocol):
    """One target, as the shared tests drive and read it."""

    name: str  # the test id: "local" or "gcp"
    env: dict[str, str]  # for `cli` and `execute_job`
    dagster_home: Path

    def qualified(self, table: str) -> str:
        """A table of the dataset, as the CLI and the errors name it."""

    def make_kestra_green_table(self, months: list[str]) -> None:
        """The green main table as the course's Kestra flow makes it on this engine, loaded with `months`."""

    def kestra_rows(self) -> collections.Counter[Row]:
        """The green main table's rows while it is Kestra's: ids as the MD5's hex."""

    def rows(self) -> collections.Counter[Row]:
        """The green main table's rows in this project's layout: ids as `rowid.hex_id` prints them."""

    def ids_per_file(self) -> dict[str, list[str]]:
        """The green main table's ids (as `rowid.hex_id` prints them) per file."""

    def check_main_table(self) -> tuple:
        """The engine's shape check of the green main table (raises ForeignTableError)."""

    def tables(self) -> dict[str, int]:
        """Rows per table of the dataset."""

    def create_table(self, name: str) -> None:
        """A table of one row in the dataset, as another tool (or a killed run) leaves one."""

    def objects(self) -> dict[str, int]:
        """Bytes per object of the bucket, by name."""

    def put_object(self, name: str, data: bytes) -> None: ...


@dataclass
class Local:
    """The embedded target: `<tmp>/home/warehouse.duckdb` and the bucket folder `<tmp>/home/bucket`."""

    tmp_path: Path
    name: str = "local"
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = environment(self.tmp_path)
        self.dagster_home = self.tmp_path / "dagster"
        self.warehouse = self.tmp_path / "home" / "warehouse.duckdb"
        self.bucket = self.tmp_path / "home" / "bucket"

    def qualified(self, table: str) -> str:
        return f"zoomcamp.{table}"

    def make_kestra_green_table(self, months: list[str]) -> None:
        self.warehouse.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(self.warehouse)) as con:
            create_kestra_green_table(con, "zoomcamp", months)

    def _query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()

    def kestra_rows(self) -> collections.Counter[Row]:
        return collections.Counter(self._query(
            "SELECT lower(hex(unique_row_id)), filename, trip_distance FROM zoomcamp.green_tripdata"))

    def rows(self) -> collections.Counter[Row]:
        return collections.Counter(self._query(
            "SELECT printf('%032x', unique_row_id), filename, trip_distance::DOUBLE FROM zoomcamp.green_tripdata"))

    def ids_per_file(self) -> dict[str, list[str]]:
        return dict(self._query(
            "SELECT filename, list(printf('%032x', unique_row_id)) FROM zoomcamp.green_tripdata GROUP BY 1"))

    def check_main_table(self) -> tuple:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return duckdb_admin.check_main_table(con, "zoomcamp", GREEN)

    def tables(self) -> dict[str, int]:
        return tables(self.warehouse)

    def create_table(self, name: str) -> None:
        with duckdb.connect(str(self.warehouse)) as con:
            con.execute(f"CREATE TABLE zoomcamp.{name} AS SELECT 1 AS x")

    def objects(self) -> dict[str, int]:
        return {p.relative_to(self.bucket).as_posix(): p.stat().st_size for p in self.bucket.rglob("*") if p.is_file()}

    def put_object(self, name: str, data: bytes) -> None:
        (self.bucket / name).write_bytes(data)


@dataclass
class Gcp:
    """GCS + BigQuery on the emulators: a bucket and a dataset of the test's own."""

    bq: object  # the `bq` fixture's client
    emulators: dict[str, str]  # the `gcp_emulators` fixture's environment
    tmp_path: Path
    name: str = "gcp"
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        from google.cloud import storage

        self.env = gcp_environment(self.tmp_path, self.emulators)
        self.dagster_home = self.tmp_path / "dagster"
        self.dataset, self.bucket = self.env["TAXI_DATASET"], self.env["GCP_BUCKET_NAME"]
        self.gcs = storage.Client(project=PROJECT)
        self.main = f"`{self.qualified('green_tripdata')}`"

    def qualified(self, table: str) -> str:
        return f"{PROJECT}.{self.dataset}.{table}"

    def make_kestra_green_table(self, months: list[str]) -> None:
        load_the_kestra_way(self.bq, self.gcs, self.bucket, self.dataset, months)

    def query(self, sql: str) -> list[tuple]:
        return [tuple(r.values()) for r in self.bq.query(sql).result()]

    def rows(self) -> collections.Counter[Row]:
        return collections.Counter(self.query(f"SELECT TO_HEX(unique_row_id), filename, trip_distance FROM {self.main}"))

    kestra_rows = rows  # BYTES either way: TO_HEX prints both

    def ids_per_file(self) -> dict[str, list[str]]:
        return dict(self.query(f"SELECT filename, ARRAY_AGG(TO_HEX(unique_row_id)) FROM {self.main} GROUP BY filename"))

    def check_main_table(self) -> tuple:
        from taxi_pipeline.lib.warehouses.bigquery.admin import check_main_table

        return check_main_table(self.bq, self.dataset, GREEN)

    def tables(self) -> dict[str, int]:
        return {t.table_id: self.bq.get_table(t).num_rows for t in self.bq.list_tables(self.dataset)}

    def create_table(self, name: str) -> None:
        self.bq.query(f"CREATE TABLE `{self.qualified(name)}` AS SELECT 1 AS x").result()

    def objects(self) -> dict[str, int]:
        return {b.name: b.size for b in self.gcs.list_blobs(self.bucket)}

    def put_object(self, name: str, data: bytes) -> None:
        self.gcs.bucket(self.bucket).blob(name).upload_from_string(data)
