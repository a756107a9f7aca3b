"""What the analytics models need of the project: a dbt with the BigQuery adapter, and their SQL,
compiled by it and dry-run against the live main tables for the newest loaded month (the bytes an
incremental build of that month reads: the month's partition, not the table)."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from taxi_pipeline.lib.analytics.project import AnalyticsProject, AnalyticsProjectError
from taxi_pipeline.lib.preflight.verdicts import FAIL, INFO, OK, Check

_NO_DBT = ("no dbt with the BigQuery adapter here, so the code location loads without the analytics "
           "models: run `bash scripts/dbt-bigquery-setup` and set "
           "TAXI_DBT_EXECUTABLE=$PWD/.venv-dbt-bigquery/bin/dbt (docs/analytics.md)")


def analytics_checks(client: bigquery.Client, project: AnalyticsProject | None,
                     newest: dict[str, dt.date | None]) -> Iterator[Check]:
    """`newest`: the newest loaded month of each main table (None: nothing loaded)."""
    if project is None:
        yield Check(INFO, "analytics", _NO_DBT)
        return
    yield Check(INFO, "analytics roles", "the models are views and tables in the dataset itself: BigQuery Data "
                "Editor on the dataset and BigQuery Job User on the project, as the loads need")
    loaded = sorted(m for m in newest.values() if m is not None)
    if not loaded:
        yield Check(INFO, "analytics", "not dry-run: no month is loaded yet")
        return
    month = loaded[-1]
    try:
        project.prepare()
        with tempfile.TemporaryDirectory() as out:
            # The staging models, each limited to one month, as an incremental build reads its main table.
            models = project.compile(Path(out), select=("path:models/staging",),
                                     variables={"staging_months": [f"{month:%Y-%m-%d}"]})
    except AnalyticsProjectError as exc:
        yield Check(FAIL, "analytics", str(exc))
        return
    for name, sql in sorted(models.items()):
        table = next((t for t in newest if f"`{t}`" in sql), None)
        if table is not None and newest[table] is None:
            yield Check(INFO, f"analytics {name}", "not dry-run: no month of its main table is loaded yet")
            continue
        yield _dry_run(client, name, sql, month)


def _dry_run(client: bigquery.Client, name: str, sql: str, month: dt.date) -> Check:
    try:
        job = client.query(sql, job_config=bigquery.QueryJobConfig(dry_run=True, use_query_cache=False))
    except google_errors.GoogleAPIError as exc:
        return Check(FAIL, f"analytics {name}", f"dry run refused: {getattr(exc, 'message', exc)}")
    return Check(OK, f"analytics {name}", f"dry run for {month:%Y-%m}: {job.total_bytes_processed or 0:,} bytes "
                 "(an incremental build reads the months it replaces)")
