"""What every target resource is: a bucket and a warehouse that go together. The two targets are
`defs.resources.LocalTarget` (the embedded default) and `defs.gcp_target.GcpTarget`."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import dagster as dg

from taxi_pipeline.defs.deployment import check_single_host_target
from taxi_pipeline.lib.admin.base import Admin
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.stores.base import ObjectStore
from taxi_pipeline.lib.warehouses.base import Warehouse


class TargetResource(dg.ConfigurableResource):
    """A bucket and a warehouse that go together; the assets use only these methods."""

    # What the UI shows as the assets' kinds.
    store_kind: ClassVar[str]
    warehouse_kind: ClassVar[str]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Before any step writes: the embedded target cannot run where each run gets its own host.
        check_single_host_target(context.instance, self.warehouse_kind)

    def store(self) -> ObjectStore:
        raise NotImplementedError

    def warehouse(self, log: Callable[[str], None] | None = None) -> Warehouse:
        """`log` gets what a user should see while the warehouse waits (the run's log)."""
        raise NotImplementedError

    def admin(self) -> Admin:
        """The operators' admin of this target's tables and objects (the CLI's view of it)."""
        raise NotImplementedError

    @classmethod
    def analytics_output(cls) -> dict:
        """The dbt profile's output for this target, from the same settings (read from the
        environment as the Definitions load: dbt parses its project against it)."""
        raise NotImplementedError

    @classmethod
    def analytics_pool(cls) -> str | None:
        """The Dagster pool of the dbt step, or None."""
        return None

    @classmethod
    def pools(cls, colour: Colour) -> dict[str, str | None]:
        """The Dagster pool of each warehouse step ("staging", "merge"), or None for no pool."""
        raise NotImplementedError
