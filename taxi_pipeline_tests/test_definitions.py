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
from taxi_pipeline.lib.colours import COLOURS

ROOT = Path(__file__).parents[1]


def test_every_colour_has_three_assets_a_check_a_job_and_a_schedule():
    definitions = defs()
    for colour in COLOURS:
        job = definitions.resolve_job_def(f"{colour}_taxi_job")
        assert dg.validate_run_config(job, {}) is not None
        assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
            f"{colour}_raw_csv", f"{colour}_staging", f"{colour}_tripdata"
        }
        assert definitions.get_schedule_def(f"{colour}_taxi_schedule").job_name == f"{colour}_taxi_job"
    assert len(list(definitions.resolve_asset_graph().asset_check_keys)) == len(COLOURS)


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


def test_dagster_validates_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    cli = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(cli), "definitions", "validate", "-w", "workspace.yaml"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
