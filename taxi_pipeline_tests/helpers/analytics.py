"""The analytics models built through the real dbt assets, and what they must equal, computed apart
from them: straight from the source files, by SQL that shares nothing with the models."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb

from taxi_pipeline.defs.analytics import build_analytics_assets, dbt_resource
from taxi_pipeline.defs.target import LocalTargetResource
from taxi_pipeline.lib.analytics.project import BUNDLED_PROJECT, AnalyticsProject, duckdb_profile
from taxi_pipeline_tests.helpers.support import forget_closed_dagster_instances

ZONES = Path(BUNDLED_PROJECT) / "seeds" / "taxi_zone_lookup.csv"


def local_project(home: Path, project_dir: Path = BUNDLED_PROJECT, *, dataset: str = "zoomcamp") -> AnalyticsProject:
    return AnalyticsProject(project_dir, home / "dbt", duckdb_profile(home / "warehouse.duckdb", dataset))


def build_analytics(home: Path, instance: dg.DagsterInstance, project: AnalyticsProject | None = None,
                    target: LocalTargetResource | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    """`analytics_job`'s one step, in process, on the embedded target in `home`."""
    project = project or local_project(home)
    target = target or LocalTargetResource(home=str(home), dataset="zoomcamp")
    forget_closed_dagster_instances()
    return dg.materialize([build_analytics_assets(project, None)], instance=instance,
                          resources={"dbt": dbt_resource(project), "target": target}, **kwargs)


def expected_revenue(files: dict[tuple[str, str], Path]) -> dict[tuple[dt.date, str, int | None], tuple]:
    """(month, colour, pickup zone) -> (trips, fare, tips, total) from the release's CSV files,
    `files` keyed by (colour, 'YYYY-MM')."""
    con = duckdb.connect()
    found = {}
    for (colour, month), path in files.items():
        rows = con.execute(
            "SELECT TRY_CAST(PULocationID AS INTEGER), count(*), sum(CAST(fare_amount AS DECIMAL(38, 9))), "
            "sum(CAST(tip_amount AS DECIMAL(38, 9))), sum(CAST(total_amount AS DECIMAL(38, 9))) "
            "FROM read_csv(?, all_varchar = true, header = true) GROUP BY 1", [str(path)]).fetchall()
        for zone, *figures in rows:
            found[(dt.date.fromisoformat(f"{month}-01"), colour, zone)] = tuple(figures)
    return found


def mart_revenue(home: Path) -> dict[tuple[dt.date, str, int | None], tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT revenue_month, colour, pickup_zone_id, trips, fare_amount, tip_amount, total_amount "
            "FROM zoomcamp.mart_monthly_zone_revenue").fetchall()
    return {(m, c, z): (n, Decimal(f), Decimal(t), Decimal(a)) for m, c, z, n, f, t, a in rows}


def fact_and_main_counts(home: Path) -> tuple[dict, dict]:
    """Rows per (colour, file) in fct_trips and in the main tables."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        fact = dict(((c, f), n) for c, f, n in con.execute(
            "SELECT colour, filename, count(*) FROM zoomcamp.fct_trips GROUP BY ALL").fetchall())
        main = {}
        for colour in ("green", "yellow"):
            main |= {(colour, f): n for f, n in con.execute(
                f"SELECT filename, count(*) FROM zoomcamp.{colour}_tripdata GROUP BY ALL").fetchall()}
    return fact, main
