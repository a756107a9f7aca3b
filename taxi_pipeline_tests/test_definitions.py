"""The code location loads: every job resolves, the CLI validates the workspace (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from taxi_pipeline.definitions import defs
from taxi_pipeline.defs.resources import SourceResource, build_resources, build_target
from taxi_pipeline.defs.sensors import RETRY_S
from taxi_pipeline.defs.target import LocalTargetResource
from taxi_pipeline.lib.colours import COLOURS
from taxi_pipeline.lib.targets import from_environment

ROOT = Path(__file__).parents[1]


def test_every_colour_has_three_assets_two_checks_a_job_a_schedule_and_a_sensor():
    definitions = defs()
    for colour in COLOURS:
        job = definitions.resolve_job_def(f"{colour}_taxi_job")
        # The job runs with no config at all: Dagster resolves every step and both resources ...
        resolved = dg.validate_run_config(job, {})
        assert set(resolved["ops"]) == {f"{colour}_raw_file", f"{colour}_staging", f"{colour}_tripdata",
                                        f"{colour}_raw_file_schema_known", f"{colour}_tripdata_month_matches_source"}
        assert {"source", "target"} <= set(resolved["resources"])
        with pytest.raises(dg.DagsterInvalidConfigError, match="nope"):  # ... and it does check what it is given
            dg.validate_run_config(job, {"ops": {"nope": {}}})
        assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
            f"{colour}_raw_file", f"{colour}_staging", f"{colour}_tripdata"
        }
        assert definitions.get_schedule_def(f"{colour}_taxi_schedule").job_name == f"{colour}_taxi_job"
        sensor = definitions.get_sensor_def(f"{colour}_taxi_sensor")
        assert sensor.job_name == f"{colour}_taxi_job" and sensor.default_status == dg.DefaultSensorStatus.RUNNING
        # It ticks every RETRY_S (cheap: its cursor says when the daily look at the source is due),
        # so a look that could not reach the source is made again within the hour.
        assert sensor.minimum_interval_seconds == RETRY_S == 15 * 60
    graph = definitions.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {pair for pair in checks if not pair[1].startswith(("not_null", "unique", "accepted_values"))} == {
        pair for colour in COLOURS
        for pair in ((f"{colour}_tripdata", "month_matches_source"), (f"{colour}_raw_file", "schema_known"))
    }


def test_the_analytics_models_are_assets_downstream_of_both_main_tables_with_their_job_and_sensor():
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    analytics = {key.to_user_string() for key in graph.get_all_asset_keys()
                 if graph.get(key).group_name == "analytics"}
    assert analytics == {"taxi_zone_lookup", "stg_green_trips", "stg_yellow_trips", "dim_zones", "fct_trips",
                         "mart_monthly_zone_revenue"}
    # The dbt source tables are the main-table assets themselves, not new source assets.
    for colour in COLOURS:
        assert {k.to_user_string() for k in graph.get(dg.AssetKey(f"stg_{colour}_trips")).parent_keys} == {
            f"{colour}_tripdata"}
    assert {k.to_user_string() for k in graph.get(dg.AssetKey("fct_trips")).parent_keys} == {
        "green_tripdata", "yellow_tripdata", "dim_zones"}
    assert graph.get(dg.AssetKey("mart_monthly_zone_revenue")).parent_keys == {dg.AssetKey("fct_trips")}
    dbt_tests = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys
                 if graph.get(k.asset_key).group_name == "analytics"}
    assert ("fct_trips", "not_null_fct_trips_unique_row_id") in dbt_tests and len(dbt_tests) == 7
    job = definitions.resolve_job_def("analytics_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == analytics
    sensor = definitions.get_sensor_def("analytics_sensor")
    assert sensor.job_name == "analytics_job" and sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_resources_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TAXI_HOME", str(tmp_path))
    monkeypatch.setenv("TAXI_SOURCE_URL", "file:///mirror")
    resources = build_resources()
    assert isinstance(resources["target"], LocalTargetResource) and isinstance(resources["source"], SourceResource)
    assert resources["target"].home == dg.EnvVar("TAXI_HOME")
    monkeypatch.delenv("TAXI_HOME")
    assert build_resources()["target"].home == ".taxi"
    monkeypatch.setenv("TAXI_TARGET", "cloud9")
    with pytest.raises(ValueError, match="cloud9"):
        build_resources()


@pytest.mark.parametrize("env", [
    {},
    {"TAXI_HOME": "/srv/taxi", "TAXI_DATASET": "prod", "TAXI_DUCKDB_PATH": "/srv/taxi/taxi_rides_ny.duckdb"},
    {"TAXI_TARGET": "gcp", "GCP_PROJECT_ID": "my-project", "GCP_BUCKET_NAME": "my-bucket"},
    {"TAXI_TARGET": "gcp", "GCP_PROJECT_ID": "my-project", "GCP_BUCKET_NAME": "my-bucket", "TAXI_DATASET": "nytaxi",
     "GCP_LOCATION": "EU", "BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9050"},
])
def test_the_resource_and_the_cli_make_the_same_target_from_the_same_variables(monkeypatch, env):
    """The code location's resource (`dg.EnvVar` fields, resolved as a run resolves them) and the
    operators' commands (`lib.targets.from_environment`) read the environment apart: they must agree."""
    for name in [n for n in os.environ if n.startswith(("TAXI_", "GCP_", "BIGQUERY_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with build_target(env.get("TAXI_TARGET", "local")).process_config_and_initialize_cm() as resource:
        assert resource.target == from_environment()


def test_the_source_mode_comes_from_the_environment_and_is_checked(monkeypatch):
    assert build_resources()["source"].choice().mode == "auto"
    monkeypatch.setenv("TAXI_SOURCE", "tlc")
    monkeypatch.setenv("TAXI_TLC_URL", "http://127.0.0.1:9/trip-data")
    source = build_resources()["source"]
    assert source.mode == dg.EnvVar("TAXI_SOURCE") and source.tlc_url == dg.EnvVar("TAXI_TLC_URL")
    with pytest.raises(ValueError, match="TAXI_TLC_URL must be an http"):
        SourceResource(tlc_url="ftp://example/trip-data").choice()
    with pytest.raises(ValueError, match="TAXI_SOURCE='s3' is not a known source"):
        SourceResource(mode="s3").choice()


def test_dagster_validates_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    cli = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(cli), "definitions", "validate", "-w", "workspace.yaml"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
