"""The embedded default: a folder as the bucket and one DuckDB file as the warehouse."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from taxi_pipeline.lib.admin.local import LocalAdmin
from taxi_pipeline.lib.analytics.project import duckdb_profile
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.stores.local import LocalObjectStore
from taxi_pipeline.lib.warehouses.duckdb.warehouse import DuckDBWarehouse

WAREHOUSE_POOL = "warehouse"


@dataclass(frozen=True)
class LocalTarget:
    """`$TAXI_HOME/bucket` as the bucket, `TAXI_DUCKDB_PATH` (default `$TAXI_HOME/warehouse.duckdb`)
    as the warehouse."""

    name: ClassVar[str] = "local"
    store_kind: ClassVar[str] = "file"
    warehouse_kind: ClassVar[str] = "duckdb"

    home: Path
    dataset: str = "zoomcamp"
    duckdb_path: Path | None = None
    memory_limit: str = "500MB"
    threads: int = 2

    @property
    def warehouse_path(self) -> Path:
        return self.duckdb_path or self.home / "warehouse.duckdb"

    @property
    def bucket_root(self) -> Path:
        return self.home / "bucket"

    def store(self) -> LocalObjectStore:
        return LocalObjectStore(self.bucket_root)

    def warehouse(self, log: Callable[[str], None] | None = None) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.warehouse_path, self.dataset, memory_limit=self.memory_limit,
                               threads=self.threads, log=log)

    def admin(self) -> LocalAdmin:
        return LocalAdmin(self.warehouse_path, self.dataset, self.bucket_root)

    def analytics_output(self) -> dict:
        return duckdb_profile(self.warehouse_path, self.dataset)

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
        # at least once a second (docs/performance.md). The merge, a rename, keeps the
        # `warehouse` pool's one slot, so the Runs page still shows merges queued behind each other.
        return {"staging": None, "merge": WAREHOUSE_POOL}
