"""The course's own dbt project (DataTalksClub data-engineering-zoomcamp,
`04-analytics-engineering/taxi_rides_ny` at commit 5cd686a1, with dbt_utils 1.3.3 and codegen 0.14.0
in its dbt_packages/: `data/taxi_rides_ny`), unchanged, built through the integration on the embedded
target with only documented settings: the warehouse file `taxi_rides_ny.duckdb`, the dataset `prod`.

Its `fct_trips` is incremental on "pickup time newer than the newest in the table": a month loaded
after a newer one must still reach it (the integration rebuilds the incremental models whole then)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from taxi_pipeline.defs.target import LocalTargetResource
from taxi_pipeline.lib.analytics.project import AnalyticsProject, AnalyticsProjectError, duckdb_profile
from taxi_pipeline.lib.colours import GREEN, YELLOW
from taxi_pipeline_tests.helpers.analytics import build_analytics
from taxi_pipeline_tests.helpers.support import DATA, MIRROR, load_month, make_resources, warehouse_held

COURSE = DATA / "taxi_rides_ny"


def _distinct_trips(*files: Path) -> int:
    """What the course's int_trips keeps, computed from the source files: one trip per (vendor,
    pickup time, pickup zone) among rows with a vendor."""
    sql = " UNION ALL ".join(
        f"SELECT VendorID, {'lpep' if 'green' in f.name else 'tpep'}_pickup_datetime AS t, PULocationID "
        f"FROM read_csv('{f}', all_varchar = true, header = true) WHERE VendorID IS NOT NULL" for f in files)
    return duckdb.sql(f"SELECT count(*) FROM (SELECT DISTINCT * FROM ({sql}))").fetchall()[0][0]


def _fct_trips(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return dict(con.execute("SELECT service_type, count(*) FROM prod.fct_trips GROUP BY 1").fetchall())


@pytest.fixture
def course(tmp_path):
    project_dir = shutil.copytree(COURSE, tmp_path / "taxi_rides_ny")
    home, path = tmp_path / "taxi_home", tmp_path / "taxi_rides_ny.duckdb"
    project = AnalyticsProject(project_dir, home / "dbt", duckdb_profile(path, "prod"))
    target = LocalTargetResource(home=str(home), duckdb_path=str(path), dataset="prod")
    return project, target, home, path


def test_the_courses_project_builds_unchanged_and_an_older_month_reaches_fct_trips(course, http_mirror):
    project, target, home, path = course
    resources = {**make_resources(home, http_mirror.url), "target": target}
    green_2020_04, yellow_2021_01 = MIRROR / "green/green_tripdata_2020-04.csv.gz", MIRROR / "yellow/yellow_tripdata_2021-01.csv.gz"
    green_2019_10 = MIRROR / "green/green_tripdata_2019-10.csv.gz"
    with dg.instance_for_test() as instance:
        for colour, month in ((GREEN, "2020-04-01"), (YELLOW, "2021-01-01")):
            assert load_month(colour, month, resources, instance=instance).success
        first = build_analytics(home, instance, project, target)
        assert first.success
        assert _fct_trips(path) == {"Green": 24_364, "Yellow": 22_532}  # counted apart, research notes
        assert _fct_trips(path) == {"Green": _distinct_trips(green_2020_04), "Yellow": _distinct_trips(yellow_2021_01)}

        # An older month, loaded after a newer one: the course's fct_trips alone would skip it.
        assert load_month(GREEN, "2019-10-01", resources, instance=instance).success
        older = build_analytics(home, instance, project, target)
        assert older.success
        said = [r.user_message for r in instance.all_logs(older.run_id) if "dbt build:" in r.user_message]
        assert "month 2019-10 is older than the newest loaded month (2021-01)" in said[0], said
        assert _fct_trips(path)["Green"] == _distinct_trips(green_2020_04, green_2019_10)
        tests = [e for e in older.get_asset_check_evaluations()]
        assert tests and all(e.passed for e in tests)  # the course's 33 tests


def test_the_build_waits_for_the_warehouse_a_load_holds_and_never_fails_on_the_lock(course, http_mirror):
    project, target, home, path = course
    with dg.instance_for_test() as instance:
        resources = {**make_resources(home, http_mirror.url), "target": target}
        for colour, month in ((GREEN, "2019-10-01"), (YELLOW, "2020-01-01")):
            assert load_month(colour, month, resources, instance=instance).success
        logs: list[str] = []
        with warehouse_held(home, path):  # as a loading step holds it while it stages
            done = {}
            builder = threading.Thread(target=lambda: done.setdefault("result", build_analytics(
                home, instance, project, target, raise_on_error=False)))
            builder.start()
            while not any("is locked by" in m for m in logs):
                builder.join(0.5)
                assert builder.is_alive(), "the build ended while the warehouse was held"
                logs = [r.user_message for run in instance.get_runs() for r in instance.all_logs(run.run_id)]
        builder.join(120)
        result = done["result"]
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        waited = [m for m in logs if "is locked by" in m]
        assert "waiting" in waited[0] and str(path) in waited[0]
        everything = "\n".join(r.user_message for r in instance.all_logs(result.run_id))
        assert "Could not set lock" not in everything


def test_a_project_without_its_packages_is_refused_with_the_way_out(tmp_path):
    project_dir = shutil.copytree(COURSE, tmp_path / "taxi_rides_ny", ignore=shutil.ignore_patterns("dbt_packages"))
    project = AnalyticsProject(project_dir, tmp_path / "dbt", duckdb_profile(tmp_path / "x.duckdb", "prod"))
    with pytest.raises(AnalyticsProjectError, match=r"lists packages \(packages.yml\) but has none in dbt_packages/: "
                                                    r"run `dbt deps` in .* once where the package hub is reachable"):
        project.prepare()
    assert not (tmp_path / "dbt").exists()  # refused before anything is written
