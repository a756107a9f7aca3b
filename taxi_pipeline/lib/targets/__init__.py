"""The targets (`base.Target`): `local` (a folder + DuckDB, the embedded default) and `gcp`
(GCS + BigQuery), and the one the environment selects."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from taxi_pipeline.lib.targets.base import Target
from taxi_pipeline.lib.targets.local import LocalTarget


class TargetConfigError(ValueError):
    """The environment does not say which target, or not all that it needs."""


def from_environment(env: Mapping[str, str] = os.environ) -> Target:
    """The target `TAXI_TARGET` names (default `local`), from the same variables as the code location."""
    name, dataset = env.get("TAXI_TARGET", "local"), env.get("TAXI_DATASET", "zoomcamp")
    if name == "local":
        duckdb_path = env.get("TAXI_DUCKDB_PATH")
        return LocalTarget(Path(env.get("TAXI_HOME", ".taxi")), dataset, Path(duckdb_path) if duckdb_path else None)
    if name == "gcp":
        from taxi_pipeline.lib.targets.gcp import GcpTarget  # the Google clients, only for this target

        return GcpTarget(required(env, "GCP_PROJECT_ID"), required(env, "GCP_BUCKET_NAME"), dataset,
                         env.get("GCP_LOCATION", "US"), env.get("BIGQUERY_EMULATOR_HOST"))
    raise TargetConfigError(f"TAXI_TARGET={name!r} is not a known target; use 'local' or 'gcp'")


def required(env: Mapping[str, str], name: str) -> str:
    if not env.get(name):
        raise TargetConfigError(f"TAXI_TARGET=gcp needs {name} to be set")
    return env[name]
