"""The smoke load: two small real files (99 release CSV rows of green 2019-01; 60 TLC Parquet rows
of green 2022-01, half with NULL codes) loaded through the real warehouse code into scratch tables
of the user's dataset and a scratch prefix of the bucket, then removed. Scratch tables, not a
scratch dataset: BigQuery Data Editor on the dataset is enough for them.

Between staging and merging, the live main table's MERGE is dry-run against the staged rows:
its bytes estimate shows whether BigQuery prunes it to one partition, and a sandbox refuses it.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import secrets
from dataclasses import dataclass
from pathlib import Path

from google.api_core import exceptions as google_errors
from google.cloud import bigquery, storage

from taxi_pipeline.lib import rowid
from taxi_pipeline.lib.colours import GREEN, Colour
from taxi_pipeline.lib.raw_file import RawFile, layout_from_json
from taxi_pipeline.lib.sources.parquet import ParquetValidator
from taxi_pipeline.lib.warehouses.bigquery import sql
from taxi_pipeline.lib.warehouses.bigquery.jobs import Jobs, month_params
from taxi_pipeline.lib.warehouses.bigquery.warehouse import BigQueryWarehouse

DATA = Path(__file__).parents[2] / "preflight_data"
FILES = (  # (bundled file, the name its rows carry, format, month)
    ("green_tripdata_2019-01.head99.csv.gz", "green_tripdata_2019-01.csv", "csv", dt.date(2019, 1, 1)),
    ("green_tripdata_2022-01.slice60.parquet", "green_tripdata_2022-01.parquet", "parquet", dt.date(2022, 1, 1)),
)


@dataclass
class SmokeResult:
    loaded: list[str]  # one line per file: rows, distinct ids, reference check, cost
    merge_dry_run_bytes: int | None = None
    merge_dry_run_error: str | None = None
    dry_run_month: str = ""
    staged_bytes: int = 0  # the staged CSV rows' table, which the dry-run MERGE reads
    failures: list[str] = dataclasses.field(default_factory=list)


class Smoke:
    def __init__(self, gcs: storage.Client, warehouse: BigQueryWarehouse, bucket: str):
        self.gcs, self.warehouse, self.bucket = gcs, warehouse, bucket
        self.token = secrets.token_hex(4)
        self.colour: Colour = dataclasses.replace(GREEN, name=f"preflight_{self.token}_green")
        self.prefix = f"preflight/{self.token}/"

    def run(self, client: bigquery.Client, live_month: dt.date | None) -> SmokeResult:
        result = SmokeResult([])
        try:
            for bundled, file_name, fmt, month in FILES:
                raw = self._upload(bundled, file_name, fmt)
                staged = self.warehouse.stage(self.colour, month, raw)
                if fmt == "csv":
                    result.staged_bytes = client.get_table(staged.table).num_bytes or 0
                    self._dry_run_live_merge(client, live_month or month, result)
                merged = self.warehouse.merge(self.colour, month, raw)
                result.loaded.append(self._verify(client, bundled, file_name, fmt, month, staged, merged, result))
        finally:
            self._clean(client)
        return result

    def _upload(self, bundled: str, file_name: str, fmt: str) -> RawFile:
        path = DATA / bundled
        blob = self.gcs.bucket(self.bucket).blob(f"{self.prefix}{bundled}")
        kind = "application/vnd.apache.parquet" if fmt == "parquet" else "application/gzip"
        blob.upload_from_filename(str(path), content_type=kind)
        layout = ()
        if fmt == "parquet":
            validator = ParquetValidator(file_name, GREEN)
            validator.feed(path.read_bytes()[:1024])
            layout = layout_from_json(validator.finish(path).details["layout"])
        return RawFile(f"gs://{self.bucket}/{blob.name}", file_name, fmt, layout=layout)

    def _dry_run_live_merge(self, client: bigquery.Client, month: dt.date, result: SmokeResult) -> None:
        """The real colour's MERGE, against the live main table if there is one, else the scratch one."""
        target = GREEN if self._exists(client, GREEN.main_table) else self.colour
        staged = self.colour.month_table(FILES[0][3])
        statement = sql.merge_month(self.warehouse.project, self.warehouse.dataset, target, staged)
        result.dry_run_month = f"{month:%Y-%m}"
        try:
            job = Jobs(client, self.warehouse.location).query(statement, month_params(month), dry_run=True)
            result.merge_dry_run_bytes = int(job.total_bytes_processed or 0)
        except Exception as exc:  # the service's words are the finding (sandbox, permissions)
            result.merge_dry_run_error = str(exc)

    def _verify(self, client, bundled, file_name, fmt, month, staged, merged, result: SmokeResult) -> str:
        table = sql.table(self.warehouse.project, self.warehouse.dataset, self.colour.main_table)
        rows = client.query(
            f"SELECT TO_HEX(unique_row_id) FROM {table} WHERE file_month = @file_month",
            job_config=bigquery.QueryJobConfig(query_parameters=month_params(month)),
        ).result()
        ids = [row[0] for row in rows]
        line = f"{file_name}: {len(ids)} rows, {len(set(ids))} distinct ids"
        if fmt == "csv":
            with gzip.open(DATA / bundled, "rt", newline="") as f:
                reader = csv.reader(f)
                next(reader)
                expected = sorted(rowid.row_ids(file_name, reader))
            same = sorted(ids) == expected
            line += ", equal to the reference ids" if same else ", NOT equal to the reference ids"
            if not same:
                result.failures.append(f"{file_name}: ids differ from rowid.py's")
        if len(ids) != staged.rows or len(set(ids)) != len(ids):
            result.failures.append(f"{file_name}: {len(ids)} rows, {len(set(ids))} distinct, staged {staged.rows}")
        billed = int(staged.metadata.get("bigquery_bytes_billed", 0)) + int(merged.metadata.get("bigquery_bytes_billed", 0))
        return line + f"; {billed:,} bytes billed"

    def _exists(self, client: bigquery.Client, table: str) -> bool:
        try:
            client.get_table(self.warehouse.table_name(table))
        except google_errors.NotFound:
            return False
        return True

    def _clean(self, client: bigquery.Client) -> None:
        dataset = f"{self.warehouse.project}.{self.warehouse.dataset}"
        for found in client.list_tables(dataset):
            if found.table_id.startswith(f"preflight_{self.token}_"):
                client.delete_table(found, not_found_ok=True)
        for blob in self.gcs.list_blobs(self.bucket, prefix=self.prefix):
            blob.delete()
