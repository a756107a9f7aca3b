"""The production warehouse: BigQuery. The file never passes through Python here: a load job reads
it from the bucket (CSV as text, Parquet in its own types), and SQL does the rest."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from taxi_pipeline.lib.warehouses.bigquery import sql
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.identifiers import validate_identifier
from taxi_pipeline.lib.raw_file import RawFile
from taxi_pipeline.lib.sources.base import InvalidFileError
from taxi_pipeline.lib.warehouses.base import MergeResult, MonthStats, StageResult
from taxi_pipeline.lib.warehouses.shape import check_main_table

log = logging.getLogger(__name__)
ClientFactory = Callable[[], contextlib.AbstractContextManager[bigquery.Client]]


class BigQueryWarehouse:
    """Stages a month by load job, merges it with one MERGE, retries BigQuery's DML conflicts."""

    def __init__(
        self, client: ClientFactory, project: str, dataset: str, location: str | None = None,
        merge_attempts: int = 6,
    ):
        self._client = client
        self.project = sql.validate_project(project)
        self.dataset = validate_identifier("dataset", dataset)
        self.location = location
        self.merge_attempts = merge_attempts

    def table_name(self, table: str) -> str:
        return sql.table_id(self.project, self.dataset, table)

    def stage(self, colour: Colour, month: dt.date, raw: RawFile) -> StageResult:
        # Always rebuilt: BigQuery does the work, so a rebuild costs this process nothing.
        staging, loaded = colour.staging_table(month), f"{colour.staging_table(month)}__raw"
        params = self._month_params(month, raw.file_name)
        with self._client() as client:
            self._ensure_dataset(client)
            check_main_table(client, self.dataset, colour, project=self.project)  # another shape: touch nothing
            self._load(client, colour, raw, loaded)
            try:
                if raw.format == "parquet":
                    statement = sql.create_staging_from_parquet(
                        self.project, self.dataset, colour, staging, loaded, raw.layout)
                    self._query(client, statement, params)
                else:
                    self._query(client, sql.create_staging_table(self.project, self.dataset, colour, staging, loaded),
                                params)
            except google_errors.BadRequest as exc:
                if raw.format == "parquet":  # ERROR() of a typed_value: names the column and value
                    raise InvalidFileError(raw.file_name, f"a value does not fit its column: {exc.message}") from exc
                raise self._locate_bad_value(client, colour, raw.file_name, loaded) from exc
            finally:
                client.delete_table(self.table_name(loaded), not_found_ok=True)
            [(rows,)] = self._query(client, sql.count_rows(self.project, self.dataset, staging))
        return StageResult(self.table_name(staging), rows)

    def merge(
        self, colour: Colour, month: dt.date, file_name: str, month_file_names: tuple[str, ...],
    ) -> MergeResult:
        # The partition column says which month a row is of, whichever source's file it came from.
        params = self._month_params(month)
        with self._client() as client:
            self._ensure_main_table(client, colour)
            # Row counts only: the distinct-id count is the check's job, not the merge's.
            month_rows = sql.count_month_rows(self.project, self.dataset, colour)
            [(before,)] = self._query(client, month_rows, params)
            job = self._merge_with_retries(client, sql.merge_month(
                self.project, self.dataset, colour, colour.staging_table(month)), params)
            # The month now lives in the main table: one copy at rest, not two. A re-run stages
            # it again from the bucket object (BigQuery's work, not this process's).
            client.delete_table(self.table_name(colour.staging_table(month)), not_found_ok=True)
            [(after,)] = self._query(client, month_rows, params)
            [(table_rows,)] = self._query(client, sql.count_rows(self.project, self.dataset, colour.main_table))
        inserted, deleted = _dml_counts(job, before, after)
        return MergeResult(self.table_name(colour.main_table), inserted, deleted, after, table_rows)

    def month_stats(self, colour: Colour, month: dt.date, month_file_names: tuple[str, ...]) -> MonthStats:
        with self._client() as client:
            self._ensure_main_table(client, colour)
            [(rows, distinct)] = self._query(
                client, sql.month_stats(self.project, self.dataset, colour), self._month_params(month)
            )
        return MonthStats(rows, distinct)

    def loaded_months(self, colour: Colour) -> dict[dt.date, int]:
        with self._client() as client:
            try:
                rows = self._query(client, sql.rows_by_month(self.project, self.dataset, colour))
            except google_errors.NotFound:
                return {}  # no dataset or no table (dropped in the console, say): nothing loaded
        return {month: count for month, count in rows if count}

    def _ensure_main_table(self, client: bigquery.Client, colour: Colour) -> None:
        check_main_table(client, self.dataset, colour, project=self.project)  # another shape: touch nothing
        self._query(client, sql.create_main_table(self.project, self.dataset, colour))
        # Columns the TLC added later go into an older table in place (NULL for its months).
        for column in colour.columns:
            if not column.in_csv:
                self._query(client, sql.add_column(self.project, self.dataset, colour, column))

    def _ensure_dataset(self, client: bigquery.Client) -> None:
        dataset = bigquery.Dataset(f"{self.project}.{self.dataset}")
        dataset.location = self.location
        client.create_dataset(dataset, exists_ok=True)

    def _load(self, client, colour: Colour, raw: RawFile, loaded: str) -> None:
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
        job = client.load_table_from_uri(raw.uri, self.table_name(loaded), job_config=config)
        try:
            job.result()
        except google_errors.GoogleAPIError as exc:
            details = "; ".join(e.get("message", "") for e in (job.errors or [])[:3]) or str(exc)
            raise InvalidFileError(raw.file_name, f"BigQuery could not load {raw.uri}: {details}") from exc

    def _merge_with_retries(self, client, statement: str, params) -> bigquery.QueryJob:
        """BigQuery runs one DML per table at a time and fails the loser of a race with 'could not
        serialize access'; a backfill's concurrent merges wait and try again instead."""
        for attempt in range(1, self.merge_attempts + 1):
            try:
                job = client.query(statement, job_config=bigquery.QueryJobConfig(query_parameters=params))
                job.result()
                return job
            except (google_errors.BadRequest, google_errors.Conflict) as exc:
                if "serialize" not in str(exc).lower() or attempt == self.merge_attempts:
                    raise
                delay = random.uniform(0.5, 1.0) * 2**attempt
                log.info("merge conflicted with another run's DML; retrying in %.1f s", delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _locate_bad_value(self, client, colour: Colour, file_name: str, raw: str) -> InvalidFileError:
        rows = self._query(client, sql.first_bad_value(self.project, self.dataset, colour, raw))
        if not rows:
            return InvalidFileError(file_name, "a value could not be converted to its column's type")
        column, expected, value = rows[0]
        return InvalidFileError(file_name, f"column {column}: {value!r} is not a valid {expected}")

    def _query(self, client: bigquery.Client, statement: str, params=()) -> list[tuple]:
        job = client.query(statement, job_config=bigquery.QueryJobConfig(query_parameters=list(params)))
        return [tuple(row.values()) for row in job.result()]

    @staticmethod
    def _month_params(month: dt.date, file_name: str | None = None) -> list[bigquery.ScalarQueryParameter]:
        params = [bigquery.ScalarQueryParameter("file_month", "DATE", month)]
        if file_name is not None:
            params.append(bigquery.ScalarQueryParameter("filename", "STRING", file_name))
        return params


def _dml_counts(job: bigquery.QueryJob, rows_before: int, rows_after: int) -> tuple[int, int]:
    """Inserted and deleted rows, from the job's DML statistics when the service reports them."""
    stats = getattr(job, "dml_stats", None)
    if stats is not None and stats.inserted_row_count is not None:
        return stats.inserted_row_count, stats.deleted_row_count or 0
    affected = job.num_dml_affected_rows or 0  # inserted + deleted = affected, after - before = ins - del
    inserted = (affected + rows_after - rows_before) // 2
    return inserted, affected - inserted

