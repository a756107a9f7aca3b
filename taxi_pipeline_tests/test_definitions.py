"""The code location loads: every job resolves, the CLI validates the workspace (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from taxi_pipeline.definitions import defs
from taxi_pipeline.defs.resources import LocalTarget, SourceResource, build_resources
from taxi_pipeline.defs.sensors import RETRY_S
from taxi_pipeline.lib.colours import COLOURS

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
    checks = {(k.asset_key.to_user_string(), k.name) for k in definitions.resolve_asset_graph().asset_check_keys}
    assert checks == {
        pair for colour in COLOURS
        for pair in ((f"{colour}_tripdata", "month_matches_source"), (f"{colour}_raw_file", "schema_known"))
    }


def test_resources_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TAXI_HOME", str(tmp_path))
    monkeypatch.setenv("TAXI_SOURCE_URL", "file:///mirror")
    resources = build_resources()
    assert isinstance(resources["target"], LocalTarget) and isinstance(resources["source"], SourceResource)
    assert resources["target"].home == dg.EnvVar("TAXI_HOME")
    monkeypatch.delenv("TAXI_HOME")
    assert build_resources()["target"].home == ".taxi"
    monkeypatch.setenv("TAXI_TARGET", "cloud9")
    with pytest.raises(ValueError, match="cloud9"):
        build_resources()


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
