"""What the schedules and the sensors ask before they launch a month: is it loaded, is a run of it
already queued or running, what did the source say about its file when it was loaded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from taxi_pipeline.defs.assets import main_asset_key, raw_asset_key
from taxi_pipeline.defs.partitions import MONTHLY_PARTITIONS
from taxi_pipeline.defs.runs import IN_FLIGHT, unfinished_runs
from taxi_pipeline.defs.target import TargetResource
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.sources.change_tokens import ChangeTokens
from taxi_pipeline.lib.warehouses.base import WarehouseBusyError


def recent_months(before: dt.datetime, count: int) -> list[tuple[str, dt.date]]:
    """The `count` months that ended before `before`, newest first, as (partition key, month)."""
    months: list[tuple[str, dt.date]] = []
    while len(months) < count:
        window = MONTHLY_PARTITIONS.get_prev_partition_window(before)
        if window is None:
            break
        key = MONTHLY_PARTITIONS.get_partition_key_for_timestamp(window.start.timestamp())
        months.append((key, window.start.date()))
        before = window.start
    return months


@dataclass(frozen=True)
class Loaded:
    """The months a colour has loaded, as the warehouse says (or Dagster, if it cannot say now)."""

    partitions: frozenset[str]
    recorded: frozenset[str]  # what Dagster's materialization records say
    source: str  # where `partitions` came from, for skip reasons and logs

    def missing(self, partition_key: str) -> bool:
        """Recorded as loaded by Dagster, but not in the warehouse (deleted or dropped by hand)."""
        return partition_key in self.recorded and partition_key not in self.partitions


def loaded_partitions(instance: dg.DagsterInstance, colour: Colour, target: TargetResource) -> Loaded:
    """A month counts as loaded only if the main table holds rows of it. If the warehouse is busy
    (DuckDB: a run holds the file), Dagster's records stand in until the next tick."""
    recorded = frozenset(instance.get_materialized_partitions(main_asset_key(colour)))
    warehouse = target.warehouse()
    try:
        months = warehouse.loaded_months(colour)
    except WarehouseBusyError as exc:
        return Loaded(recorded, recorded, f"Dagster's records (the warehouse is busy: {exc})")
    keys = frozenset(f"{month:%Y-%m-%d}" for month in months)
    return Loaded(keys, recorded, warehouse.table_name(colour.main_table))


def unfinished_run(instance: dg.DagsterInstance, colour: Colour, partition_key: str) -> dg.DagsterRun | None:
    """A run of the month that is queued or in progress, whoever launched it (a run whose process
    was killed is marked FAILURE on the way: `defs.runs`), or None."""
    runs = unfinished_runs(instance, dg.RunsFilter(
        tags={"taxi": colour.name, "dagster/partition": partition_key}, statuses=list(IN_FLIGHT)))
    return runs[0] if runs else None


def waiting_for(run: dg.DagsterRun) -> str:
    """What a skip reason says of a run a month waits for."""
    return f"run {run.run_id} ({run.status.value})"


def recorded_tokens(instance: dg.DagsterInstance, colour: Colour, partition_key: str) -> ChangeTokens | None:
    """What the source said about the file the month was last loaded from (the raw asset's
    materialization), or None if it was never loaded."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_asset_key(colour), asset_partitions=[partition_key]), limit=1,
    ).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    return ChangeTokens.from_metadata({k: v.value for k, v in (materialization.metadata if materialization else {}).items()})
