"""The production warehouse: BigQuery. The file never passes through Python here: a load job reads
it from the bucket (CSV as text, Parquet in its own types), and SQL does the rest.

What each step costs BigQuery: a load job (free), one CREATE TABLE AS over the loaded month, one
MERGE that reads and rewrites the month's partition only, and metadata reads (tables.get,
INFORMATION_SCHEMA.PARTITIONS) where a COUNT(*) would scan. DDL runs only when the table lacks
something (it is missing, or lacks a column the TLC added later).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.identifiers import validate_dataset
from taxi_pipeline.lib.raw_file import RawFile
from taxi_pipeline.lib.sources.base import InvalidFileError
from taxi_pipeline.lib.warehouses.base import MergeResult, MonthStats, StageResult
from taxi_pipeline.lib.warehouses.bigquery import admin, sql
from taxi_pipeline.lib.warehouses.bigquery.dataset import DatasetError, ensure_dataset
from taxi_pipeline.lib.warehouses.bigquery.jobs import Jobs, dml_counts, month_params
from taxi_pipeline.lib.warehouses.shape import ShapeReport, require_ours

_logger = logging.getLogger(__name__)

ClientFactory = Callable[[], contextlib.AbstractContextManager[bigquery.Client]]


class BigQueryWarehouse:
    """Stages a month by load job, merges it with one MERGE, retries BigQuery's DML conflicts."""

    def __init__(
        self, client: ClientFactory, project: str, dataset: str, location: str | None = None,
        merge_attempts: int = 6, log: Callable[[str], None] | None = None,
    ):
        self._client = client
        self.project = sql.validate_project(project)
        self.dataset = validate_dataset(dataset)
        self.location = location
        self.merge_attempts = merge_attempts
        self.log = log or _logger.info  # what a user should see (the run's log)

    def table_name(self, table: str) -> str:
        return sql.table_id(self.project, self.dataset, table)

    def stage(self, colour: Colour, month: dt.date, raw: RawFile) -> StageResult:
        # Always rebuilt: BigQuery does the work, so a rebuild costs this process nothing.
        staging = staged_table(colour, month, raw)
        loaded = f"{staging}__raw"
        with self._client() as client:
            jobs = Jobs(client, self.location)
            dataset = ensure_dataset(client, self.project, self.dataset, self.location)
            self._main_table(client, colour)  # another shape: touch nothing
            self._load(jobs, colour, raw, loaded, dataset.location)
            try:
                jobs.query(self._staging_statement(colour, raw, staging, loaded), month_params(month, raw.file_name))
            except google_errors.BadRequest as exc:
                if raw.format == "parquet":  # ERROR() of a typed_value: names the column and value
                    raise InvalidFileError(raw.file_name, f"a value does not fit its column: {exc.message}") from exc
                raise self._locate_bad_value(jobs, colour, raw.file_name, loaded) from exc
            finally:
                client.delete_table(self.table_name(loaded), not_found_ok=True)
            rows = client.get_table(self.table_name(staging)).num_rows or 0  # metadata, not a COUNT(*)
        return StageResult(self.table_name(staging), rows, metadata=jobs.costs.as_metadata())

    def merge(self, colour: Colour, month: dt.date, raw: RawFile, then: Callable[[], None] | None = None) -> MergeResult:
        """One MERGE makes the month's rows those of the table staged from `raw`. That table is
        named after the file's MD5 (`staged_table`), so a concurrent run staging another file of
        the month never replaces it: the month is tied to `raw` by construction. If it is gone (a
        run of the same bytes merged it first, or a killed run's file is finished here), `raw` is
        staged again. `then` (moving the file into the month's place) follows the MERGE."""
        # The partition column says which month a row is of, whichever source's file it came from.
        params = month_params(month)
        staging = staged_table(colour, month, raw)
        costs = {}
        with self._client() as client:
            try:
                staged = client.get_table(self.table_name(staging)).num_rows or 0
            except google_errors.NotFound:
                staged = self.stage(colour, month, raw).rows
            jobs = Jobs(client, self.location, self.log)
            self._ensure_main_table(client, jobs, colour)
            before = self._partition_rows(jobs, colour).get(month, 0)
            job = jobs.query_with_retries(
                sql.merge_month(self.project, self.dataset, colour, staging), params, self.merge_attempts)
            # The month now lives in the main table: one copy at rest, not two. A re-run stages
            # it again from the bucket object (BigQuery's work, not this process's).
            client.delete_table(self.table_name(staging), not_found_ok=True)
            table_rows = client.get_table(self.table_name(colour.main_table)).num_rows or 0
            costs = jobs.costs.as_metadata()
        if then is not None:
            then()
        # After the merge the month's rows are the staged ones (their ids are distinct by construction).
        inserted, deleted = dml_counts(job, before, staged)
        return MergeResult(self.table_name(colour.main_table), inserted, deleted, staged, table_rows, metadata=costs)

    def month_stats(self, colour: Colour, month: dt.date) -> MonthStats:
        with self._client() as client:
            jobs = Jobs(client, self.location)
            if self._main_table(client, colour) is None:
                return MonthStats(0, 0)
            [(rows, distinct)] = jobs.rows(sql.month_stats(self.project, self.dataset, colour), month_params(month))
        return MonthStats(rows, distinct)

    def ensure_main_tables(self, colours: Iterable[Colour]) -> None:
        with self._client() as client:
            jobs = Jobs(client, self.location)
            for colour in colours:
                self._ensure_main_table(client, jobs, colour)

    def loaded_months(self, colour: Colour) -> dict[dt.date, int]:
        """From the partitions' metadata: the sensors and schedules ask on every tick."""
        with self._client() as client:
            try:
                return self._partition_rows(Jobs(client, self.location), colour)
            except google_errors.NotFound:
                return {}  # no dataset (dropped in the console, say): nothing loaded

    def _partition_rows(self, jobs: Jobs, colour: Colour) -> dict[dt.date, int]:
        params = [bigquery.ScalarQueryParameter("table_name", "STRING", colour.main_table)]
        rows = jobs.rows(sql.partition_rows(self.project, self.dataset), params)
        return {dt.datetime.strptime(pid, "%Y%m%d").date(): count for pid, count in rows if count}

    def _main_table(self, client: bigquery.Client, colour: Colour) -> ShapeReport | None:
        report = admin.main_table_report(client, self.project, self.dataset, colour)
        return require_ours(colour, report)

    def _ensure_main_table(self, client: bigquery.Client, jobs: Jobs, colour: Colour) -> None:
        """DDL only for what the table lacks, so a month's merge is one job plus metadata reads.

        Two merges of a colour can get here at once although their pool has one slot: Dagster's
        claim of a slot on Postgres is not atomic (see test_postgres.py's four-at-once test). The
        loser's DDL may then fail (local-bigquery fails the second of two concurrent `CREATE TABLE
        IF NOT EXISTS` every time; BigQuery documents nothing about concurrent DDL on one table), so
        a failed DDL is forgiven when the table, read again, has all it was for."""
        report = self._main_table(client, colour)
        if _complete(report):
            return
        try:
            self._complete_main_table(jobs, colour, report)
        except google_errors.GoogleAPIError as exc:
            if not _complete(self._main_table(client, colour)):
                raise
            self.log(f"{self.table_name(colour.main_table)}: another run completed it at the same time ({exc})")

    def _complete_main_table(self, jobs: Jobs, colour: Colour, report: ShapeReport | None) -> None:
        if report is None:
            jobs.query(sql.create_main_table(self.project, self.dataset, colour))
            return
        # Columns the TLC added later go into an older table in place (NULL for its months).
        for column in report.to_add:
            jobs.query(sql.add_column(self.project, self.dataset, colour, column))

    def _staging_statement(self, colour: Colour, raw: RawFile, staging: str, loaded: str) -> str:
        if raw.format == "parquet":
            return sql.create_staging_from_parquet(self.project, self.dataset, colour, staging, loaded, raw.layout)
        return sql.create_staging_table(self.project, self.dataset, colour, staging, loaded)

    def _load(self, jobs: Jobs, colour: Colour, raw: RawFile, loaded: str, location: str | None) -> None:
        """A load job (not an external table: faster, and what every emulator supports). A CSV
        loads with every column STRING, so the ids hash the file's own text; a Parquet file loads
        in its own types (one file per load, so its era's types never meet another era's)."""
        if raw.format == "parquet":
            config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET)
        else:
            config = bigquery.LoadJobConfig(
                schema=[bigquery.SchemaField(c.name, "STRING") for c in colour.csv_columns],
                source_format=bigquery.SourceFormat.CSV, skip_leading_rows=1, max_bad_records=0,
            )
        config.write_disposition = bigquery.WriteDisposition.WRITE_TRUNCATE
        job = jobs.client.load_table_from_uri(raw.uri, self.table_name(loaded), job_config=config,
                                              location=self.location)
        try:
            job.result()
        except google_errors.GoogleAPIError as exc:
            details = "; ".join(e.get("message", "") for e in (job.errors or [])[:3]) or str(exc)
            if "location" in details.lower():  # the bucket is not where the dataset is: not the file's fault
                raise DatasetError(
                    f"BigQuery could not read {raw.uri} into dataset {self.project}.{self.dataset}, which is in "
                    f"{location}: {details}. The bucket must be in the dataset's location (or a region inside "
                    "its multi-region): https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-csv"
                    "#data-locations; `python -m taxi_pipeline preflight` shows both locations") from exc
            raise InvalidFileError(raw.file_name, f"BigQuery could not load {raw.uri}: {details}") from exc
        jobs.costs.add(job)

    def _locate_bad_value(self, jobs: Jobs, colour: Colour, file_name: str, raw: str) -> InvalidFileError:
        rows = jobs.rows(sql.first_bad_value(self.project, self.dataset, colour, raw))
        if not rows:
            return InvalidFileError(file_name, "a value could not be converted to its column's type")
        column, expected, value = rows[0]
        return InvalidFileError(file_name, f"column {column}: {value!r} is not a valid {expected}")


def staged_table(colour: Colour, month: dt.date, raw: RawFile) -> str:
    """The month's staging table for the file `raw`: named after its bytes (MD5), so that a run
    merges the table built from its own file whatever other runs of the month stage meanwhile.
    A table name may hold letters, digits and underscores, up to 1,024 UTF-8 bytes
    (https://cloud.google.com/bigquery/docs/tables#table_naming): the name and 16 hex digits fit."""
    suffix = f"__{raw.md5[:16]}" if raw.md5 else ""
    return f"{colour.month_table(month)}{suffix}"


def _complete(report: ShapeReport | None) -> bool:
    """The main table exists and needs no DDL: no column to add."""
    return report is not None and not report.to_add
