"""Schedule ticks at fixed times, against a file:// mirror: the month that just ended, or a skip."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from taxi_pipeline.defs.assets import build_colour_assets
from taxi_pipeline.defs.jobs import build_colour_job
from taxi_pipeline.defs.schedules import build_colour_schedule
from taxi_pipeline.lib.colours import GREEN, YELLOW
from taxi_pipeline.lib.targets.local import LocalTarget
from taxi_pipeline_tests.helpers.support import copy_mirror, make_resources, query, warehouse_held


def _tick(colour, when: dt.datetime, resources):
    job = build_colour_job(colour)
    schedule = build_colour_schedule(colour, job)
    definitions = dg.Definitions(
        assets=build_colour_assets(colour, LocalTarget), jobs=[job], schedules=[schedule],
        resources=resources,
    )
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, resources=resources,
            repository_def=definitions.get_repository_def(),
        )
        return schedule, schedule.evaluate_tick(context)


@pytest.mark.parametrize(("colour", "hour", "cron"), [(GREEN, 9, "0 9 1 * *"), (YELLOW, 10, "0 10 1 * *")])
def test_the_february_tick_loads_january(tmp_path, colour, hour, cron):
    mirror = copy_mirror(tmp_path / "mirror")
    january = mirror / colour.name / f"{colour.name}_tripdata_2020-01.csv.gz"
    january.parent.mkdir(parents=True, exist_ok=True)
    january.write_bytes(b"published")
    resources = make_resources(tmp_path / "home", mirror.as_uri())
    when = dt.datetime(2020, 2, 1, hour, tzinfo=dt.UTC)
    schedule, data = _tick(colour, when, resources)
    assert schedule.cron_schedule == cron and schedule.execution_timezone == "UTC"
    [request] = data.run_requests
    assert request.partition_key == "2020-01-01"
    assert request.tags["taxi"] == colour.name
    assert request.tags["file"] == f"{colour.name}_tripdata_2020-01.csv"
    assert request.tags["trigger"] == "schedule" and "backfill" not in request.tags


def test_a_month_not_yet_published_is_skipped_with_a_reason(tmp_path):
    resources = make_resources(tmp_path / "home", copy_mirror(tmp_path / "mirror").as_uri())
    when = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    _, data = _tick(GREEN, when, resources)
    assert not data.run_requests
    # After the release's last month, the TLC serves the months (here a file:// mirror of it).
    assert data.skip_message == (
        "not published at the source yet: green_tripdata_2026-11.parquet, green_tripdata_2026-10.parquet, "
        "green_tripdata_2026-09.parquet"
    )


def test_in_release_mode_months_after_the_release_are_not_launched_and_the_skip_says_why(tmp_path):
    resources = make_resources(tmp_path / "home", copy_mirror(tmp_path / "mirror").as_uri(), mode="release")
    _, data = _tick(GREEN, dt.datetime(2021, 9, 1, 9, tzinfo=dt.UTC), resources)
    assert not data.run_requests
    assert data.skip_message == (
        "not published at the source yet: green_tripdata_2021-07.csv, green_tripdata_2021-06.csv; "
        "no source configured for 2021-08 (TAXI_SOURCE=release)"
    )


def test_a_month_published_late_is_picked_up_by_the_next_tick(tmp_path):
    """2020-11 was not there on 2020-12-01; on 2021-01-01 both it and 2020-12 are launched."""
    mirror = copy_mirror(tmp_path / "mirror")
    resources = make_resources(tmp_path / "home", mirror.as_uri())
    _, december_tick = _tick(GREEN, dt.datetime(2020, 12, 1, 9, tzinfo=dt.UTC), resources)
    assert [r.partition_key for r in december_tick.run_requests] == ["2020-10-01"]
    for month in ("2020-11", "2020-12"):
        (mirror / "green" / f"green_tripdata_{month}.csv.gz").write_bytes(b"published")
    _, january_tick = _tick(GREEN, dt.datetime(2021, 1, 1, 9, tzinfo=dt.UTC), resources)
    assert [r.partition_key for r in january_tick.run_requests] == ["2020-12-01", "2020-11-01", "2020-10-01"]
    assert all(r.run_key == r.partition_key for r in january_tick.run_requests)  # deduped by the daemon


def test_the_cron_can_be_overridden_for_tests():
    schedule = build_colour_schedule(GREEN, build_colour_job(GREEN), cron="* * * * *")
    assert schedule.cron_schedule == "* * * * *"


class _TickingSchedule:
    """The green schedule with its job and assets, ticking at 2020-11-01 09:00 UTC against a real
    instance, and running what it requests."""

    def __init__(self, resources: dict, instance: dg.DagsterInstance):
        self.resources, self.instance = resources, instance
        job = build_colour_job(GREEN)
        self.schedule = build_colour_schedule(GREEN, job)
        self.definitions = dg.Definitions(
            assets=build_colour_assets(GREEN, LocalTarget), jobs=[job], schedules=[self.schedule], resources=resources,
        )

    def tick(self) -> dg.ScheduleExecutionData:
        context = dg.build_schedule_context(
            instance=self.instance, scheduled_execution_time=dt.datetime(2020, 11, 1, 9, tzinfo=dt.UTC),
            resources=self.resources, repository_def=self.definitions.get_repository_def(),
        )
        return self.schedule.evaluate_tick(context)

    def run(self, request: dg.RunRequest) -> None:
        result = self.definitions.resolve_job_def("green_taxi_job").execute_in_process(
            partition_key=request.partition_key, instance=self.instance, tags=request.tags,
        )
        assert result.success


def test_a_loaded_month_is_not_launched_again(tmp_path):
    resources = make_resources(tmp_path / "home", copy_mirror(tmp_path / "mirror").as_uri())
    with dg.instance_for_test() as instance:
        schedule = _TickingSchedule(resources, instance)
        [request] = schedule.tick().run_requests
        assert request.partition_key == "2020-10-01"
        schedule.run(request)
        again = schedule.tick()
        assert not again.run_requests and "green_tripdata_2020-10" not in again.skip_message


def test_a_month_deleted_by_hand_is_launched_again_by_the_next_tick(tmp_path):
    """The warehouse, not Dagster's records, says what is loaded."""
    home = tmp_path / "home"
    resources = make_resources(home, copy_mirror(tmp_path / "mirror").as_uri())
    with dg.instance_for_test() as instance:
        schedule = _TickingSchedule(resources, instance)
        tick = schedule.tick
        [request] = tick().run_requests
        schedule.run(request)
        assert not tick().run_requests
        with duckdb.connect(str(home / "warehouse.duckdb")) as con:  # someone deletes the month by hand
            con.execute("DELETE FROM zoomcamp.green_tripdata_2020_10")
        [again] = tick().run_requests
        assert (again.partition_key, again.tags["reason"]) == ("2020-10-01", "missing")
        schedule.run(again)
        assert query(home, "SELECT count(*) FROM zoomcamp.green_tripdata") == [(95_120,)]
        assert not tick().run_requests


def test_while_the_warehouse_is_busy_dagsters_records_stand_in_and_the_skip_says_so(tmp_path):
    """A run (here: the test) holds the DuckDB file when the tick comes: the tick neither waits
    nor fails; it takes the months Dagster recorded as loaded, says so, and launches the rest."""
    home = tmp_path / "home"
    mirror = copy_mirror(tmp_path / "mirror")
    resources = make_resources(home, mirror.as_uri())
    with dg.instance_for_test() as instance:
        schedule = _TickingSchedule(resources, instance)
        [request] = schedule.tick().run_requests
        schedule.run(request)  # 2020-10 loaded and recorded
        with warehouse_held(home):
            held = schedule.tick()
        assert not held.run_requests
        assert "loaded: 2020-10 (in Dagster's records (the warehouse is busy: " in held.skip_message, held.skip_message
        assert "is locked by" in held.skip_message
        # Not recorded by Dagster but published: launched even though the warehouse cannot be read.
        (mirror / "green" / "green_tripdata_2020-09.csv.gz").write_bytes(b"published")
        with warehouse_held(home):
            [late] = schedule.tick().run_requests
        assert late.partition_key == "2020-09-01" and "reason" not in late.tags
        # The records stand in only while the warehouse is busy: a month deleted by hand is
        # not loaded per the warehouse, whatever Dagster recorded.
        with duckdb.connect(str(home / "warehouse.duckdb")) as con:
            con.execute("DELETE FROM zoomcamp.green_tripdata_2020_10")
        (mirror / "green" / "green_tripdata_2020-09.csv.gz").unlink()
        [missing] = schedule.tick().run_requests
        assert (missing.partition_key, missing.tags["reason"]) == ("2020-10-01", "missing")
