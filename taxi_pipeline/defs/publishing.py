"""How the staging and merge steps move a month's file through the bucket (`stores.publication`)
so that the month's object is always the file its warehouse month came from.

- staging reads this run's pending file (or, in a run that downloaded nothing, the month's
  object); if the warehouse refuses it, the file goes to `rejected/` with the error and the
  month's object stays;
- the merge publishes the month, then moves the pending file into the month's place;
- a file a killed run left `merging` is staged, merged and moved into place first (roll forward).

After each move the raw asset gets a materialization describing the month's object, so its
latest one says which file is loaded; the sensors read the month's object itself.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from taxi_pipeline.defs.runs import unfinished_runs
from taxi_pipeline.lib.stores.base import StoredObject
from taxi_pipeline.lib.stores.publication import DOWNLOADED, MERGING, STAGED, SUPERSEDED, MonthObjects
from taxi_pipeline.lib.warehouses.base import MergeResult, StageResult

Stage = Callable[[StoredObject], StageResult]
# Merges the month from the table staged from the object; the callable runs once it has committed.
Merge = Callable[[StoredObject, Callable[[], None] | None], MergeResult]


def run_finished(instance: dg.DagsterInstance, run_id: str) -> bool:
    """A run that is over, killed, or that this instance never knew: its pending file is nobody's now."""
    return not unfinished_runs(instance, dg.RunsFilter(run_ids=[run_id]))


def describe(stored: StoredObject | None) -> dict[str, object]:
    """The raw asset's metadata for the month's object as it is in the bucket."""
    if stored is None:
        return {"state": "no file published for the month", "uri": "none"}
    meta = stored.metadata
    length = meta.get("content_length")
    return {
        "state": "published: the file the warehouse's month came from",
        "uri": dg.MetadataValue.path(stored.uri),
        "md5": meta.get("md5", ""),
        "dagster/row_count": int(meta.get("rows", 0)),
        "bytes": dg.MetadataValue.int(stored.size),
        "file": meta.get("file_name", ""),
        "source": meta.get("source", ""),
        "etag": meta.get("etag", ""),
        "content_length": int(length) if length and length.isdigit() else -1,
        "last_modified": meta.get("last_modified", ""),
    }


class Publication:
    """One step's view of one month's objects."""

    def __init__(self, context: dg.AssetExecutionContext, objects: MonthObjects, raw_key: dg.AssetKey):
        self.context = context
        self.objects = objects
        self.raw_key = raw_key
        self.run_id = context.run.run_id

    def own(self) -> StoredObject | None:
        return self.objects.pending(self.run_id)

    def record(self, **extra: object) -> dg.AssetMaterialization:
        """A materialization of the raw asset that describes the month's object as it now is.
        The steps yield it (a yielded event is kept even when the step then fails)."""
        return dg.AssetMaterialization(
            asset_key=self.raw_key, partition=self.context.partition_key,
            metadata={**describe(self.objects.published()), **extra},
        )

    def finish_interrupted(self, stage: Stage, merge: Merge) -> list[dg.AssetMaterialization]:
        """A file left `merging` by a killed run: its month may be published in the warehouse
        while the bucket still holds the previous file. Staging and merging it again is a no-op
        if the merge had committed and completes it if not; then it takes the month's place."""
        events = []
        for stored in self.objects.pendings():
            if self.objects.run_of(stored) == self.run_id or self.objects.state(stored) != MERGING:
                continue
            if not run_finished(self.context.instance, self.objects.run_of(stored)):
                continue  # still at it (waiting for the warehouse, say): its own merge moves it
            self.context.log.warning(
                f"{stored.uri}: run {self.objects.run_of(stored)} began publishing it and did not finish (stopped, or still at it); "
                "publishing it now, before this run's file"
            )
            stage(stored)
            merge(stored, lambda stored=stored: self.objects.promote(stored, self.run_id))
            events.append(self.record(finished_for_run=self.objects.run_of(stored)))
            self._supersede_others(None)
        return events

    def staged(self, stored: StoredObject | None) -> None:
        """`stored` (None: the month's object) is what the warehouse's staged month holds now."""
        if stored is not None:
            self.objects.mark(stored, STAGED)
        self._supersede_others(stored)

    def _supersede_others(self, kept: StoredObject | None) -> None:
        for other in self.objects.pendings():
            if kept is not None and other.key == kept.key or self.objects.state(other) == MERGING:
                continue
            if run_finished(self.context.instance, self.objects.run_of(other)):
                self.objects.discard(other)  # a finished run's file no longer matches what is staged
            elif self.objects.state(other) == STAGED:
                self.objects.mark(other, SUPERSEDED)

    def to_merge(self) -> StoredObject | None:
        """The pending file this run merges: its own, or one a finished run staged (a merge run on
        its own). The merge builds the month from this very file (`Warehouse.merge`), whatever
        another run staged since."""
        stored = self.own()
        if stored is None:
            staged = [o for o in self.objects.pendings() if self.objects.state(o) == STAGED
                      and run_finished(self.context.instance, self.objects.run_of(o))]
            stored = staged[-1] if staged else None
        if stored is None:
            return None
        if self.objects.state(stored) == DOWNLOADED:
            raise RuntimeError(
                f"{stored.uri} was downloaded by this run but never staged: materialize the staging asset first"
            )
        self.objects.mark(stored, MERGING)
        return self.objects.store.stat(stored.key)

    def promote(self, stored: StoredObject) -> dg.AssetMaterialization:
        self.objects.promote(stored, self.run_id)
        return self.record()

    def reject(self, stored: StoredObject, error: Exception) -> dg.AssetMaterialization:
        rejected = self.objects.reject(stored, self.run_id, str(error))
        self.context.log.error(f"{stored.uri}: rejected, kept as {rejected.uri}; the month's object is unchanged")
        return self.record(rejected_uri=dg.MetadataValue.path(rejected.uri), rejected_md5=rejected.metadata.get("md5", ""),
                           rejected_error=str(error)[:1000])
