"""Tags every run carries, whichever way it was launched (UI, CLI, schedule, sensor, backfill)."""

from __future__ import annotations

import dagster as dg

from taxi_pipeline.defs.runs import PROCESS_TAG, this_process
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.sources.base import SourceFile

BACKFILL_ID_TAG = "dagster/backfill"


def run_tags(colour: Colour, file: SourceFile, launched_by_backfill: bool) -> dict[str, str]:
    """`file=` is the real file name (also the rows' `filename`), `source=` the source serving it."""
    tags = {"taxi": colour.name, "file": file.file_name, "source": file.source}
    if launched_by_backfill:
        tags["backfill"] = "true"
    return tags


def tag_run(context: dg.AssetExecutionContext, colour: Colour, file: SourceFile) -> None:
    """Adds the tags from inside the run: asset-graph backfills drop job tags, and `file=` depends
    on the partition, so no launch path can be trusted to have set them. The run's process is
    recorded too (`defs.runs`)."""
    wanted = {**run_tags(colour, file, BACKFILL_ID_TAG in context.run.tags), PROCESS_TAG: this_process()}
    missing = {k: v for k, v in wanted.items() if context.run.tags.get(k) != v}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)
