"""Configuration: where the files come from, and which bucket + warehouse they go to.

The target is chosen once, when the Definitions load, from `TAXI_TARGET`; every value that can
come from the environment is a `dg.EnvVar`, so the UI shows where it came from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import dagster as dg

from taxi_pipeline.defs.target import TargetResource
from taxi_pipeline.lib.admin.base import Admin
from taxi_pipeline.lib.analytics.project import duckdb_profile
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.settings import Settings, SettingsError, read_settings
from taxi_pipeline.lib.sources import SourceChoice
from taxi_pipeline.lib.sources.http import RetrySettings
from taxi_pipeline.lib.sources.release import DEFAULT_BASE_URL, ReleaseSource
from taxi_pipeline.lib.sources.tlc import DEFAULT_TLC_URL, TlcSource
from taxi_pipeline.lib.stores.base import ObjectStore
from taxi_pipeline.lib.stores.local import LocalObjectStore
from taxi_pipeline.lib.warehouses.base import Warehouse
from taxi_pipeline.lib.warehouses.duckdb.warehouse import DuckDBWarehouse

WAREHOUSE_POOL = "warehouse"


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


def warehouse_file(home: str, duckdb_path: str) -> Path:
    """The embedded warehouse's file: `TAXI_DUCKDB_PATH`, else `$TAXI_HOME/warehouse.duckdb`."""
    return Path(duckdb_path) if duckdb_path else Path(home) / "warehouse.duckdb"


class LocalTarget(TargetResource):
    """The embedded default: `$TAXI_HOME/bucket` as the bucket, `$TAXI_HOME/warehouse.duckdb`."""

    store_kind: ClassVar[str] = "file"
    warehouse_kind: ClassVar[str] = "duckdb"

    home: str = ".taxi"
    duckdb_path: str = ""  # default: $TAXI_HOME/warehouse.duckdb
    dataset: str = "zoomcamp"
    memory_limit: str = "500MB"
    threads: int = 2

    @property
    def warehouse_path(self) -> Path:
        return warehouse_file(self.home, self.duckdb_path)

    def store(self) -> ObjectStore:
        return LocalObjectStore(Path(self.home) / "bucket")

    def warehouse(self, log: Callable[[str], None] | None = None) -> Warehouse:
        return DuckDBWarehouse(
            self.warehouse_path, self.dataset, memory_limit=self.memory_limit, threads=self.threads, log=log,
        )

    def admin(self) -> Admin:
        from taxi_pipeline.lib.admin.local import LocalAdmin

        return LocalAdmin(self.warehouse_path, self.dataset, Path(self.home) / "bucket")

    @classmethod
    def analytics_output(cls) -> dict:
        env = dg.EnvVar
        path = warehouse_file(env("TAXI_HOME").get_value(".taxi"), env("TAXI_DUCKDB_PATH").get_value(""))
        return duckdb_profile(path, env("TAXI_DATASET").get_value("zoomcamp"))

    @classmethod
    def analytics_pool(cls) -> str | None:
        # dbt writes the one DuckDB file, as a merge does: it queues behind merges on the Runs page.
        return WAREHOUSE_POOL

    @classmethod
    def pools(cls, colour: Colour) -> dict[str, str | None]:
        # One DuckDB file takes one writing process, and DuckDB's own lock enforces it: a step
        # that finds the file locked waits for it (`DuckDBWarehouse`, retrying at least once a
        # second). Staging, the long step, takes no pool slot: a step blocked on a pool is looked
        # at again only after Dagster's own backoff (1.1^n s, up to 15 s:
        # dagster/_core/execution/plan/instance_concurrency_context.py), while the lock is tried
        # at least once a second (benchmarks/README.md has the backfill's figures before and
        # after). The merge, a rename, keeps the `warehouse` pool's one slot,
        # so the Runs page still shows merges queued behind each other.
        return {"staging": None, "merge": WAREHOUSE_POOL}


def _env(name: str, default: str | None) -> str | None:
    """`dg.EnvVar(name)` where the variable is set (resolved at run time), else the default."""
    return dg.EnvVar(name) if dg.EnvVar(name).get_value() is not None else default


def _required_env(name: str) -> dg.EnvVar:
    if dg.EnvVar(name).get_value() is None:
        raise ValueError(f"TAXI_TARGET=gcp needs {name} to be set")
    return dg.EnvVar(name)


def build_target(name: str) -> TargetResource:
    dataset = _env("TAXI_DATASET", "zoomcamp")
    if name == "local":
        return LocalTarget(home=_env("TAXI_HOME", ".taxi"), duckdb_path=_env("TAXI_DUCKDB_PATH", ""), dataset=dataset)
    if name == "gcp":
        # Imported only for this target: the Google client libraries take ~0.7 s to import, paid
        # by every run process, code-server reload and CLI call of the embedded default otherwise.
        from taxi_pipeline.defs.gcp_target import GcpTarget, GCSResource, TaxiBigQueryResource

        project = _required_env("GCP_PROJECT_ID")
        return GcpTarget(
            bucket=_required_env("GCP_BUCKET_NAME"), dataset=dataset, gcs=GCSResource(project=project),
            bigquery=TaxiBigQueryResource(
                project=project, location=_env("GCP_LOCATION", "US"),
                api_endpoint=_env("BIGQUERY_EMULATOR_HOST", None),
            ),
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
