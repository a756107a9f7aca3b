"""Dagster's memory of a colour: the materialization and check records in the instance at
$DAGSTER_HOME, which the UI, the schedules and the sensors read to decide what is loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg

# Private in 1.13.27, and the only way to see backfills still launching runs.
from dagster._core.execution.backfill import BulkActionStatus

from taxi_pipeline.cli.text import count
from taxi_pipeline.defs.runs import IN_FLIGHT, unfinished_runs
from taxi_pipeline.lib.admin.base import ConfigError
from taxi_pipeline.lib.colours import Colour

# `month_matches_source` on the main table, `schema_known` on the raw file.
CHECK_NAMES = ("month_matches_source", "schema_known")
_RECORD_LIMIT = 100_000


def asset_keys(colour: Colour) -> list[dg.AssetKey]:
    """The colour's three assets; the raw file's asset was `<colour>_raw_csv` before the Parquet source."""
    names = ("raw_file", "raw_csv", "staging", "tripdata")
    return [dg.AssetKey(f"{colour.name}_{name}") for name in names]


@dataclass(frozen=True)
class AssetRecords:
    key: dg.AssetKey
    partitions: list[str]  # partitions Dagster has seen materialized
    check_runs: dict[str, int]  # check name -> runs that evaluated it

    def describe(self) -> str:
        parts = [count(len(self.partitions), "materialized partition")]
        if self.partitions:
            shown = self.partitions
            if len(shown) > 4:
                shown = [shown[0], "...", shown[-1]]
            parts[0] += f" ({', '.join(shown)})"
        parts += [count(runs, f"{name} check run") for name, runs in self.check_runs.items()]
        return ", ".join(parts)


class Records:
    def __init__(self) -> None:
        if not os.environ.get("DAGSTER_HOME"):
            raise ConfigError(
                "DAGSTER_HOME is not set: fresh-start also wipes the colour's records from the Dagster "
                "instance the webserver and daemon use; set DAGSTER_HOME to its folder (of dagster.yaml)"
            )
        self.instance = dg.DagsterInstance.get()
        self.label = f"Dagster instance {self.instance.root_directory}"

    def summary(self, colour: Colour) -> list[AssetRecords]:
        found = []
        for key in asset_keys(colour):
            partitions = sorted(self.instance.get_materialized_partitions(key))
            checks = {name: self._check_runs(dg.AssetCheckKey(key, name)) for name in CHECK_NAMES}
            checks = {name: runs for name, runs in checks.items() if runs}
            if partitions or checks or self.instance.has_asset_key(key):
                found.append(AssetRecords(key, partitions, checks))
        return found

    def _check_runs(self, key: dg.AssetCheckKey) -> int:
        history = self.instance.event_log_storage.get_asset_check_execution_history(key, limit=_RECORD_LIMIT)
        return len({record.run_id for record in history})

    def wipe(self, keys: list[dg.AssetKey]) -> None:
        # Whole keys: the SQL event logs (SQLite, Postgres) cannot wipe single partitions, and every
        # partition of these keys belongs to the colour being started afresh.
        self.instance.wipe_assets(keys)

    def activity(self, colour: Colour) -> list[str]:
        """Runs and backfills of the colour still in flight: they would write again after a wipe."""
        filters = (
            dg.RunsFilter(tags={"taxi": colour.name}, statuses=list(IN_FLIGHT)),
            # Queued runs of the job may not carry the tag yet: the run adds it when it starts.
            dg.RunsFilter(job_name=f"{colour.name}_taxi_job", statuses=list(IN_FLIGHT)),
        )
        # A run whose process was killed is marked FAILURE here rather than blocking for ever.
        runs = {run.run_id: run for f in filters for run in unfinished_runs(self.instance, f)}
        keys = set(asset_keys(colour))
        backfills = [
            b for b in self.instance.get_backfills(status=BulkActionStatus.REQUESTED)
            if b.job_name == f"{colour.name}_taxi_job" or keys & set(b.asset_selection or ())
        ]
        return [f"run {run_id} ({run.status.value})" for run_id, run in runs.items()] + [
            f"backfill {b.backfill_id} (requested)" for b in backfills
        ]

