"""The target (`lib.targets`: a bucket and a warehouse that go together) as a Dagster resource. Its
settings are `dg.EnvVar`s where the environment gives them, so the UI shows where each came from;
they make the one target object the assets use (`target`), which the operators' commands build
from the same variables (`lib.targets.from_environment`). The two targets:
`LocalTargetResource` (the embedded default) and `defs.gcp_target.GcpTargetResource`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import dagster as dg
from pydantic import PrivateAttr

from taxi_pipeline.defs.deployment import check_single_host_target
from taxi_pipeline.lib.stores.base import ObjectStore
from taxi_pipeline.lib.targets.base import Target
from taxi_pipeline.lib.targets.local import LocalTarget
from taxi_pipeline.lib.warehouses.base import Warehouse


class TargetResource(dg.ConfigurableResource):
    """A target's settings, and the target they make; the assets use only `store` and `warehouse`."""

    target_class: ClassVar[type[Target]]  # its kinds in the UI and its pools, known before any run
    _target: Target | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Before any step writes: the embedded target cannot run where each run gets its own host.
        check_single_host_target(context.instance, self.target_class.warehouse_kind)
        self._target = self.build()

    def build(self) -> Target:
        raise NotImplementedError

    @property
    def target(self) -> Target:
        """Built once, as the resource is set up for a run (or a sensor's tick)."""
        return self._target if self._target is not None else self.build()

    def store(self) -> ObjectStore:
        return self.target.store()

    def warehouse(self, log: Callable[[str], None] | None = None) -> Warehouse:
        """`log` gets what a user should see while the warehouse waits (the run's log)."""
        return self.target.warehouse(log)


class LocalTargetResource(TargetResource):
    """The embedded default: `$TAXI_HOME/bucket` as the bucket, and `TAXI_DUCKDB_PATH` (default
    `$TAXI_HOME/warehouse.duckdb`) as the warehouse."""

    target_class: ClassVar[type[Target]] = LocalTarget

    home: str = ".taxi"
    duckdb_path: str = ""  # default: $TAXI_HOME/warehouse.duckdb
    dataset: str = "zoomcamp"
    memory_limit: str = "500MB"
    threads: int = 2

    def build(self) -> LocalTarget:
        return LocalTarget(Path(self.home), self.dataset, Path(self.duckdb_path) if self.duckdb_path else None,
                           memory_limit=self.memory_limit, threads=self.threads)
