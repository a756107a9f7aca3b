"""Configuration: where the files come from, and which bucket + warehouse they go to.

The target is chosen once, when the Definitions load, from `TAXI_TARGET`; every value that can
come from the environment is a `dg.EnvVar`, so the UI shows where it came from.
"""

from __future__ import annotations

import sys

import dagster as dg

from taxi_pipeline.defs.target import LocalTargetResource, TargetResource
from taxi_pipeline.lib.settings import Settings, SettingsError, read_settings
from taxi_pipeline.lib.sources import SourceChoice
from taxi_pipeline.lib.sources.http import RetrySettings
from taxi_pipeline.lib.sources.release import DEFAULT_BASE_URL, ReleaseSource
from taxi_pipeline.lib.sources.tlc import DEFAULT_TLC_URL, TlcSource


class SourceResource(dg.ConfigurableResource):
    """Where the monthly files come from: the course's release (CSV) and the TLC (Parquet), or
    http:// / file:// mirrors of either; `mode` says which serves a month (see `lib.sources`)."""

    mode: str = "auto"
    base_url: str = DEFAULT_BASE_URL
    tlc_url: str = DEFAULT_TLC_URL
    attempts: int = 5
    first_retry_delay_s: float = 1.0
    timeout_s: float = 60.0
    deadline_s: float = 7200.0

    def choice(self) -> SourceChoice:
        return SourceChoice(self.mode, ReleaseSource(self.base_url), TlcSource(self.tlc_url))

    def retry_settings(self) -> RetrySettings:
        return RetrySettings(self.attempts, self.first_retry_delay_s, timeout_s=self.timeout_s,
                             deadline_s=self.deadline_s)


def _env(name: str, default: str | None) -> str | None:
    """`dg.EnvVar(name)` where the variable is set (resolved at run time), else the default."""
    return dg.EnvVar(name) if dg.EnvVar(name).get_value() is not None else default


def _required_env(name: str) -> dg.EnvVar:
    if dg.EnvVar(name).get_value() is None:
        raise ValueError(f"TAXI_TARGET=gcp needs {name} to be set")
    return dg.EnvVar(name)


def build_target(name: str) -> TargetResource:
    """The resource of the target `name` (`TAXI_TARGET`), its settings read from the environment
    as `lib.targets.from_environment` reads them."""
    dataset = _env("TAXI_DATASET", "zoomcamp")
    if name == "local":
        return LocalTargetResource(home=_env("TAXI_HOME", ".taxi"), duckdb_path=_env("TAXI_DUCKDB_PATH", ""),
                                   dataset=dataset)
    if name == "gcp":
        # Imported only for this target: the Google client libraries take ~0.7 s to import, paid
        # by every run process, code-server reload and CLI call of the embedded default otherwise.
        from taxi_pipeline.defs.gcp_target import GcpTargetResource

        return GcpTargetResource(
            project=_required_env("GCP_PROJECT_ID"), bucket=_required_env("GCP_BUCKET_NAME"), dataset=dataset,
            location=_env("GCP_LOCATION", "US"), bigquery_endpoint=_env("BIGQUERY_EMULATOR_HOST", None),
        )
    raise ValueError(f"TAXI_TARGET={name!r} is not a known target; use 'local' or 'gcp'")


def check_settings() -> Settings:
    """Every setting checked as the code location loads. The problem is also written to stderr
    first, so that it is the first line a user reads above the loader's traceback."""
    try:
        return read_settings()
    except SettingsError as exc:
        print(f"taxi_pipeline: {exc}", file=sys.stderr, flush=True)
        raise


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources for the target `TAXI_TARGET` names (default `local`)."""
    check_settings()
    return {
        "source": SourceResource(
            mode=_env("TAXI_SOURCE", "auto"), base_url=_env("TAXI_SOURCE_URL", DEFAULT_BASE_URL),
            tlc_url=_env("TAXI_TLC_URL", DEFAULT_TLC_URL),
            deadline_s=float(dg.EnvVar("TAXI_DOWNLOAD_DEADLINE_S").get_value("7200")),
        ),
        "target": build_target(dg.EnvVar("TAXI_TARGET").get_value("local")),
    }


def schedule_cron_override() -> str | None:
    """`TAXI_SCHEDULE_CRON`, e.g. `* * * * *`, replaces the monthly cron (for tests and demos)."""
    return dg.EnvVar("TAXI_SCHEDULE_CRON").get_value()


def sensor_overrides() -> dict[str, int]:
    """`TAXI_SENSOR_INTERVAL_S` replaces the sensors' daily interval, `TAXI_SENSOR_LOOKBACK_MONTHS`
    the number of months they look at (for tests and demos)."""
    names = {"interval_s": "TAXI_SENSOR_INTERVAL_S", "lookback_months": "TAXI_SENSOR_LOOKBACK_MONTHS"}
    return {arg: int(value) for arg, name in names.items() if (value := dg.EnvVar(name).get_value())}
