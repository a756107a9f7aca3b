"""What Dagster knows of a month's files: whether another run is over (its pending file is then
nobody's), and the raw asset's metadata for the month's object. The protocol that moves the
files is `lib/month_load.py`."""

from __future__ import annotations

import dagster as dg

from taxi_pipeline.defs.runs import unfinished_runs
from taxi_pipeline.lib.sources.change_tokens import ChangeTokens
from taxi_pipeline.lib.stores.base import StoredObject


def run_finished(instance: dg.DagsterInstance, run_id: str) -> bool:
    """A run that is over, killed, or that this instance never knew: its pending file is nobody's now."""
    return not unfinished_runs(instance, dg.RunsFilter(run_ids=[run_id]))


def describe(stored: StoredObject | None) -> dict[str, object]:
    """The raw asset's metadata for the month's object as it is in the bucket."""
    if stored is None:
        return {"state": "no file published for the month", "uri": "none"}
    meta = stored.metadata
    return {
        "state": "the month's object: the file the warehouse's month came from",
        "uri": dg.MetadataValue.path(stored.uri),
        "md5": meta.get("md5", ""),
        "dagster/row_count": int(meta.get("rows", 0)),
        "bytes": dg.MetadataValue.int(stored.size),
        "file": meta.get("file_name", ""),
        "source": meta.get("source", ""),
        **ChangeTokens.from_metadata(meta).as_asset_metadata(),
    }
