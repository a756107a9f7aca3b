"""Running BigQuery jobs: parameters bound, the cost of each step added up for the UI, and the
few service answers that need a clearer word than BigQuery's own."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

_logger = logging.getLogger(__name__)

# BigQuery's sandbox (no billing account) refuses DML: https://cloud.google.com/bigquery/docs/sandbox#limitations
_SANDBOX_WORDS = ("free tier", "sandbox", "billing has not been enabled", "billing is not enabled")
SANDBOX_ADVICE = (
    "this project is in the BigQuery sandbox (no billing account), which refuses DML such as the "
    "month's MERGE and expires every table and partition after 60 days "
    "(https://cloud.google.com/bigquery/docs/sandbox#limitations): enable billing on the project "
    "(https://cloud.google.com/bigquery/docs/sandbox#upgrade), then run the month again"
)


class SandboxError(RuntimeError):
    """The project cannot run this pipeline until billing is enabled."""


@dataclass
class JobCosts:
    """What a step's jobs cost, from their statistics: shown on the step's materialization."""

    jobs: int = 0
    bytes_processed: int = 0
    bytes_billed: int = 0
    slot_ms: int = 0
    job_ids: list[str] = field(default_factory=list)

    def add(self, job: bigquery.QueryJob | bigquery.LoadJob) -> None:
        self.jobs += 1
        self.job_ids.append(job.job_id)
        self.slot_ms += int(getattr(job, "slot_millis", None) or 0)  # a LoadJob has none
        if isinstance(job, bigquery.QueryJob):
            self.bytes_processed += int(job.total_bytes_processed or 0)
            self.bytes_billed += int(job.total_bytes_billed or 0)

    def as_metadata(self) -> dict[str, int | str]:
        return {
            "bigquery_jobs": self.jobs,
            "bigquery_bytes_processed": self.bytes_processed,
            "bigquery_bytes_billed": self.bytes_billed,
            "bigquery_slot_ms": self.slot_ms,
            "bigquery_job_ids": ", ".join(self.job_ids),
        }


class Jobs:
    """One client's jobs for one step; every query's cost lands in `costs`."""

    def __init__(self, client: bigquery.Client, location: str | None = None,
                 log: Callable[[str], None] | None = None):
        self.client = client
        self.location = location
        self.costs = JobCosts()
        self.log = log or _logger.info

    def query(self, statement: str, params=(), *, dry_run: bool = False) -> bigquery.QueryJob:
        config = bigquery.QueryJobConfig(query_parameters=list(params), dry_run=dry_run)
        try:
            job = self.client.query(statement, job_config=config, location=self.location)
            if not dry_run:
                job.result()
        except google_errors.GoogleAPIError as exc:
            if any(word in str(exc).lower() for word in _SANDBOX_WORDS):
                raise SandboxError(SANDBOX_ADVICE) from exc
            raise
        if not dry_run:
            self.costs.add(job)
        return job

    def rows(self, statement: str, params=()) -> list[tuple]:
        return [tuple(row.values()) for row in self.query(statement, params).result()]

    def query_with_retries(self, statement: str, params, attempts: int) -> bigquery.QueryJob:
        """BigQuery fails the loser of two DML statements that touch the same table too closely
        with "Could not serialize access to table ... due to concurrent update"
        (https://cloud.google.com/bigquery/docs/troubleshoot-queries): wait and try again."""
        for attempt in range(1, attempts + 1):
            try:
                return self.query(statement, params)
            except (google_errors.BadRequest, google_errors.Conflict) as exc:
                if "serialize" not in str(exc).lower() or attempt == attempts:
                    raise
                delay = random.uniform(0.5, 1.0) * 2**attempt
                self.log(f"merge conflicted with another run's DML; retrying in {delay:.1f} s")
                time.sleep(delay)
        raise AssertionError("unreachable")


def month_params(month: dt.date, file_name: str | None = None) -> list[bigquery.ScalarQueryParameter]:
    params = [bigquery.ScalarQueryParameter("file_month", "DATE", month)]
    if file_name is not None:
        params.append(bigquery.ScalarQueryParameter("filename", "STRING", file_name))
    return params


def dml_counts(job: bigquery.QueryJob, rows_before: int, rows_after: int) -> tuple[int, int]:
    """Inserted and deleted rows, from the job's DML statistics when the service reports them."""
    stats = job.dml_stats
    if stats is not None and stats.inserted_row_count is not None:
        return stats.inserted_row_count, stats.deleted_row_count or 0
    affected = job.num_dml_affected_rows or 0  # inserted + deleted = affected, after - before = ins - del
    inserted = (affected + rows_after - rows_before) // 2
    return inserted, affected - inserted
