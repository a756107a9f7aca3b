"""Blocking checks on each main table: the month holds every source row, each exactly once."""

import dagster as dg

from taxi_pipeline.defs.assets import main_asset_key
from taxi_pipeline.defs.partitions import month_of_key
from taxi_pipeline.defs.resources import TargetResource
from taxi_pipeline.lib.colours import Colour

MONTH_MATCHES_SOURCE = "month_matches_source"


def build_main_table_check(colour: Colour) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=main_asset_key(colour), name=MONTH_MATCHES_SOURCE, blocking=True,
        description="The month's rows in the main table equal the source file's data rows, "
        "and no two of them share a unique_row_id.",
    )
    def month_matches_source(context: dg.AssetCheckExecutionContext, target: TargetResource):
        month = month_of_key(context.run.tags["dagster/partition"])
        stored = target.store().stat(colour.object_key(month))
        source_rows = int(stored.metadata["rows"]) if stored else None
        stats = target.warehouse().month_stats(colour, month)
        return dg.AssetCheckResult(
            passed=stats.rows == source_rows and stats.distinct_ids == stats.rows,
            metadata={
                "file": colour.file_name(month),
                "source_rows": source_rows if source_rows is not None else "missing",
                "table_rows": stats.rows,
                "distinct_unique_row_ids": stats.distinct_ids,
            },
        )

    return month_matches_source
