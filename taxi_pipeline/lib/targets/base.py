"""What a target is: a bucket and a warehouse that go together, and the operators' admin of both.
One object per target, built once from configuration: the Dagster resources hand it to the assets
(`defs.target`), and the operators' commands build it from the environment (`from_environment`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

from taxi_pipeline.lib.admin.base import Admin
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.stores.base import ObjectStore
from taxi_pipeline.lib.warehouses.base import Warehouse


class Target(Protocol):
    name: ClassVar[str]  # TAXI_TARGET's value
    store_kind: ClassVar[str]  # what the UI shows as the assets' kinds
    warehouse_kind: ClassVar[str]
    dataset: str

    def store(self) -> ObjectStore: ...

    def warehouse(self, log: Callable[[str], None] | None = None) -> Warehouse:
        """`log` gets what a user should see while the warehouse waits (the run's log)."""

    def admin(self) -> Admin: ...

    def analytics_output(self) -> dict:
        """The dbt profile's output for this target: dbt builds the models where the loads write."""

    @classmethod
    def analytics_pool(cls) -> str | None:
        """The Dagster pool of the dbt step, or None."""

    @classmethod
    def pools(cls, colour: Colour) -> dict[str, str | None]:
        """The Dagster pool of each warehouse step ("staging", "merge"), or None for no pool."""
