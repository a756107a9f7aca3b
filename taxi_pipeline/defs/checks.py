"""Checks: the main table holds the month's source rows exactly once (blocking), and the raw file
has no column the colour does not know yet (a warning: schema drift is loaded without it)."""

import dagster as dg

from taxi_pipeline.defs.assets import main_asset_key, raw_asset_key
from taxi_pipeline.defs.partitions import check_month_key
from taxi_pipeline.defs.resources import SourceResource, TargetResource
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.stores.publication import MonthObjects

MONTH_MATCHES_SOURCE = "month_matches_source"
SCHEMA_KNOWN = "schema_known"


def build_main_table_check(colour: Colour) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=main_asset_key(colour), name=MONTH_MATCHES_SOURCE, blocking=True,
        description="The month's rows in the main table equal the source file's data rows, "
        "and no two of them share a unique_row_id.",
    )
    def month_matches_source(
        context: dg.AssetCheckExecutionContext, source: SourceResource, target: TargetResource,
    ):
        month = check_month_key(context.run.tags["dagster/partition"])
        choice = source.choice()
        file = choice.locate(colour, month)
        store, warehouse = target.store(), target.warehouse(context.log.info)
        # The month's object and rows read as one: another run of the month may merge and move its
        # file in between (DuckDB: while this check waits for the file's lock), so the object is
        # read again after the rows, until it is the same on both sides of them.
        stored = store.stat(file.object_key)
        for _ in range(5):
            stats = warehouse.month_stats(colour, month)
            again = store.stat(file.object_key)
            if (again and again.metadata.get("md5")) == (stored and stored.metadata.get("md5")):
                break
            stored = again
        source_rows = int(stored.metadata["rows"]) if stored else None
        return dg.AssetCheckResult(
            passed=stats.rows == source_rows and stats.distinct_ids == stats.rows,
            metadata={
                "file": file.file_name,
                "source_rows": source_rows if source_rows is not None else "missing",
                "table_rows": stats.rows,
                "distinct_unique_row_ids": stats.distinct_ids,
            },
        )

    return month_matches_source


def build_schema_drift_check(colour: Colour) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_asset_key(colour), name=SCHEMA_KNOWN, blocking=False,
        description="Warns when the month's file has columns the colour does not know yet (the TLC "
        "adds some now and then, e.g. `request_source` from 2026-06). The month loads without "
        "them; adding the column to `lib/colours.py` and re-running the month keeps them.",
    )
    def schema_known(context: dg.AssetCheckExecutionContext, source: SourceResource, target: TargetResource):
        month = check_month_key(context.run.tags["dagster/partition"])
        file = source.choice().locate(colour, month)
        # The file this run downloaded (still pending while the check runs), else the month's.
        objects = MonthObjects(target.store(), file.object_key)
        stored = objects.pending(context.run.run_id) or objects.month_object()
        unknown = [c for c in (stored.metadata.get("unknown_columns", "") if stored else "").split(",") if c]
        return dg.AssetCheckResult(
            passed=not unknown, severity=dg.AssetCheckSeverity.WARN,
            description=(f"not loaded, unknown to {colour.name}: {', '.join(unknown)}" if unknown else None),
            metadata={"file": file.file_name, "unknown_columns": ", ".join(unknown) or "none"},
        )

    return schema_known
