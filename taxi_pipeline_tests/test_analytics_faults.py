"""Faults in the analytics step: a broken model, a failing test, a dbt process killed mid-build. Each
fails the step with dbt's own words first, and leaves the loaded months as they were."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from taxi_pipeline.lib.analytics.project import BUNDLED_PROJECT
from taxi_pipeline.lib.colours import GREEN, YELLOW
from taxi_pipeline_tests.helpers.analytics import build_analytics, fact_and_main_counts, local_project
from taxi_pipeline_tests.helpers.support import load_month, make_resources, table_checksum

pytestmark = pytest.mark.faults
ROOT = Path(__file__).parents[1]


def _failure(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.error.message


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


@pytest.fixture
def loaded(tmp_path, taxi_home, http_mirror):
    """Two months loaded, in an instance on disk that a `dagster` subprocess can share."""
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").touch()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        resources = make_resources(taxi_home, http_mirror.url)
        for colour, month in ((GREEN, "2019-10-01"), (YELLOW, "2020-01-01")):
            assert load_month(colour, month, resources, instance=instance).success
        yield instance, (table_checksum(taxi_home, GREEN), table_checksum(taxi_home, YELLOW))


def _project_with(tmp_path: Path, taxi_home: Path, path: str, old: str, new: str):
    project_dir = shutil.copytree(BUNDLED_PROJECT, tmp_path / "analytics")
    edited = project_dir / path
    assert old in edited.read_text()
    edited.write_text(edited.read_text().replace(old, new))
    return local_project(taxi_home, project_dir)


def test_a_broken_model_fails_the_step_with_dbts_words_and_the_models_above_it_still_build(
        tmp_path, taxi_home, loaded):
    instance, months = loaded
    project = _project_with(tmp_path, taxi_home, "models/marts/mart_monthly_zone_revenue.sql",
                            "sum(tip_amount) as tip_amount", "sum(tip_amount_typo) as tip_amount")
    result = build_analytics(taxi_home, instance, project, raise_on_error=False)
    assert not result.success
    message = _failure(result)
    first = message.removeprefix("dagster._core.definitions.events.Failure: ").splitlines()[0]
    assert first.startswith("dbt build failed: Failure in model mart_monthly_zone_revenue "
                            "(models/marts/mart_monthly_zone_revenue.sql): Binder Error: "
                            'Referenced column "tip_amount_typo" not found'), message
    assert "fct_trips" in _materialized(result) and "mart_monthly_zone_revenue" not in _materialized(result)
    assert (table_checksum(taxi_home, GREEN), table_checksum(taxi_home, YELLOW)) == months


def test_a_failing_test_fails_the_step_and_stops_the_models_below_it(tmp_path, taxi_home, loaded):
    instance, months = loaded
    project = _project_with(tmp_path, taxi_home, "models/marts/schema.yml", "values: [green, yellow]",
                            "values: [yellow]")
    result = build_analytics(taxi_home, instance, project, raise_on_error=False)
    assert not result.success
    message = _failure(result)
    first = message.removeprefix("dagster._core.definitions.events.Failure: ").splitlines()[0]
    assert first.startswith("dbt build failed: Failure in test accepted_values_fct_trips_colour__yellow"), message
    assert "Got 1 result, configured to fail if != 0" in first, message
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name.startswith("accepted_values")]
    assert not check.passed
    assert "fct_trips" in _materialized(result) and "mart_monthly_zone_revenue" not in _materialized(result)
    assert (table_checksum(taxi_home, GREEN), table_checksum(taxi_home, YELLOW)) == months


def _dbt_processes(home: Path) -> list[int]:
    """The dbt processes building with a profile under `home` (the pipeline passes `--profiles-dir`)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"/dbt") for part in command) and b"build" in command and \
                any(part.startswith(f"{home}/".encode()) for part in command):
            found.append(int(entry.name))
    return found


def test_a_dbt_process_killed_mid_build_fails_the_run_and_the_next_build_repairs_the_models(
        tmp_path, taxi_home, loaded):
    instance, months = loaded
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"), "TAXI_HOME": str(taxi_home)}
    log = tmp_path / "analytics.log"
    with open(log, "wb") as out:
        run = subprocess.Popen([str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m",
                                "taxi_pipeline.definitions", "-j", "analytics_job"],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "START sql" not in log.read_text():  # dbt is building its first model
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        dbt = _dbt_processes(taxi_home.resolve())
        assert dbt
        for pid in dbt:
            os.kill(pid, signal.SIGKILL)
        assert run.wait(120) != 0
    [record] = instance.get_run_records(dg.RunsFilter(job_name="analytics_job"))
    assert record.dagster_run.status == dg.DagsterRunStatus.FAILURE
    said = log.read_text()
    assert "dbt build failed: dbt exited with code -9 without saying why (was it killed?)" in said, said[-3000:]
    assert (table_checksum(taxi_home, GREEN), table_checksum(taxi_home, YELLOW)) == months

    again = build_analytics(taxi_home, instance)
    assert again.success
    fact, main = fact_and_main_counts(taxi_home)
    assert fact == main
