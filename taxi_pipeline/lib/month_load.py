"""The month's load, as one protocol in one place: download, finish what a killed run left, stage,
merge. Nothing here knows Dagster: each step returns plain results, and the assets
(`defs/assets.py`) turn them into materializations.

A month's file moves through the bucket (`stores.publication.MonthObjects`):

    download  -> <colour>/pending/<run>/<file>   validated, state `downloaded`
    stage     -> the warehouse's staged month is built from it, state `staged`
                 (refused: it goes to <colour>/rejected/<file>, the month untouched)
    merge     -> state `merging`; the month is merged from the table staged from this very file,
                 and the file becomes <colour>/<file>, the month's object, once the merge has
                 committed (DuckDB: before the file's one writer lock is let go)

so that the month's object is always the file the warehouse's month came from:
- a run merges only the table built from its own file (`Warehouse.merge` stages it again if
  another run's file stands in its place), whatever other runs of the month do meanwhile;
- a file a killed run left `merging` is merged and moved into place by the next run of the month
  before its own (`recover`); one whose run is still at work is left to it;
- a file that would empty or gut a loaded month is refused (`lib/shrink.py`) unless accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.raw_file import RawFile, layout_from_json
from taxi_pipeline.lib.shrink import check_shrink
from taxi_pipeline.lib.sources.base import InvalidFileError, Source, SourceFile
from taxi_pipeline.lib.sources.http import Download, RetrySettings, download
from taxi_pipeline.lib.stores.base import ObjectStore, StoredObject
from taxi_pipeline.lib.stores.publication import DOWNLOADED, MERGING, STAGED, STATE, SUPERSEDED, MonthObjects
from taxi_pipeline.lib.warehouses.base import MergeResult, StageResult, Warehouse

Log = Callable[[str], None]


class FileRefusedError(InvalidFileError):
    """The warehouse refused the run's file while staging; it is kept under `rejected/`."""

    def __init__(self, error: InvalidFileError, rejected: StoredObject):
        super().__init__(error.file_name, error.problem, error.line)
        self.rejected = rejected


@dataclass(frozen=True)
class Downloaded:
    stored: StoredObject  # the run's pending file
    download: Download
    month_object: StoredObject | None  # the month's object as it was
    leftovers: list[str] = field(default_factory=list)  # part files of killed downloads, removed


@dataclass(frozen=True)
class Staged:
    stored: StoredObject  # what was staged: the run's pending file, or the month's object
    result: StageResult


@dataclass(frozen=True)
class Merged:
    result: MergeResult
    moved: StoredObject | None  # the file that became the month's object, if one moved


def raw_file_of(stored: StoredObject, file: SourceFile) -> RawFile:
    """An object in the bucket as the warehouse reads it."""
    return RawFile(
        stored.uri, file.file_name, file.format, stored.metadata.get("md5"),
        layout_from_json(stored.metadata.get("layout")), int(stored.metadata["rows"]),
    )


class MonthLoad:
    """One run's load of one month of one colour, from `file` into `store` and `warehouse`.

    `run_finished(run_id)` says whether another run is over (or was killed): its pending file is
    then nobody's. `others` are the month's files at the other sources (a switch of source
    replaces the month)."""

    def __init__(
        self, colour: Colour, month: dt.date, file: SourceFile, store: ObjectStore, warehouse: Warehouse | None,
        run_id: str, run_finished: Callable[[str], bool], log: Log, others: tuple[SourceFile, ...] = (),
    ):
        self.colour, self.month, self.file = colour, month, file
        self.store, self.warehouse, self.run_id = store, warehouse, run_id
        self.objects = MonthObjects(store, file.object_key)
        self.run_finished, self.log, self.others = run_finished, log, others

    # -- download -------------------------------------------------------------------------------

    def download(self, source: Source, retry: RetrySettings) -> Downloaded:
        """Streams the month's file through its validator into this run's pending key."""
        leftovers = self.store.remove_leftovers(f"{self.colour.name}/pending/")
        file = self.file
        with self.store.write(self.objects.pending_key(self.run_id)) as pending:
            got = download(file.url, pending.path, lambda: source.validator(self.colour, file), retry, self.log)
            pending.metadata.update({
                "rows": str(got.data_rows), "md5": got.md5_hex, "source_url": file.url,
                "source": file.source, "format": file.format, "file_name": file.file_name,
                **got.tokens.as_metadata(), **{k: v for k, v in got.details.items() if v},
                STATE: DOWNLOADED,
            })
        return Downloaded(self.objects.pending(self.run_id), got, self.objects.month_object(), leftovers)

    # -- finish what a killed run left ----------------------------------------------------------

    def recover(self) -> list[str]:
        """Files a killed run left `merging`: its month may be merged in the warehouse while the
        bucket still holds the previous file. Merging it again is a no-op if the merge had
        committed and completes it if not; then it takes the month's place. Returns the runs."""
        finished = []
        for stored in self.objects.pendings():
            run = self.objects.run_of(stored)
            if run == self.run_id or self.objects.state(stored) != MERGING or not self.run_finished(run):
                continue
            self.log(f"{stored.uri}: run {run} began merging it and was stopped; merging it now, before this "
                     "run's file")
            self._checked_stage(stored)
            self._merge(stored, lambda stored=stored: self.objects.promote(stored, self.run_id))
            finished.append(run)
            self._supersede_others(None)
        return finished

    # -- stage ----------------------------------------------------------------------------------

    def stage(self, accept_shrink: bool, partition_key: str) -> Staged:
        """Stages this run's pending file (in a run that downloaded nothing, the month's object).
        A file the warehouse refuses, or that would empty or gut the loaded month, goes to
        `rejected/` (FileRefusedError); the month and its object stay as they were."""
        stored = self.objects.pending(self.run_id)
        pending = stored is not None
        stored = stored or self.store.stat(self.file.object_key)
        if stored is None:
            raise FileNotFoundError(f"{self.file.object_key} is not in the bucket: materialize the month's raw file "
                                    f"first (source {self.file.source})")
        try:
            if pending and not accept_shrink:
                loaded = self.loaded_object()
                check_shrink(self.file.file_name, int(stored.metadata["rows"]),
                             int(loaded.metadata.get("rows", 0)) if loaded else None,
                             loaded.metadata.get("file_name", loaded.key) if loaded else "", partition_key)
            result = self._checked_stage(stored)
        except InvalidFileError as exc:
            if not pending:
                raise
            raise FileRefusedError(exc, self.objects.reject(stored, self.run_id, str(exc))) from exc
        if pending:
            self.objects.mark(stored, STAGED)
        self._supersede_others(stored if pending else None)
        return Staged(stored, result)

    def loaded_object(self) -> StoredObject | None:
        """The month's object the warehouse's month came from: of the month's files at every
        source, the one moved into place last."""
        found = [self.store.stat(f.object_key) for f in (self.file, *self.others)]
        return max((o for o in found if o is not None), key=lambda o: o.metadata.get("publication_at", ""), default=None)

    def _checked_stage(self, stored: StoredObject) -> StageResult:
        """Stages `stored`; a warehouse that reads another row count than the validator counted
        refuses the file like a bad value."""
        result = self.warehouse.stage(self.colour, self.month, raw_file_of(stored, self.file))
        source_rows = int(stored.metadata["rows"])
        if result.rows != source_rows:
            quoted = stored.metadata.get("first_quote_line")
            why = (f": line {quoted} holds a quoted field, and a line break inside quotes makes two lines one "
                   "row (the release's files quote nothing)") if quoted else ""
            raise InvalidFileError(self.file.file_name, f"the warehouse read {result.rows:,} rows but the file has "
                                                        f"{source_rows:,} lines of data{why}")
        return result

    def _supersede_others(self, kept: StoredObject | None) -> None:
        for other in self.objects.pendings():
            if kept is not None and other.key == kept.key or self.objects.state(other) == MERGING:
                continue
            if self.run_finished(self.objects.run_of(other)):
                self.objects.discard(other)  # a finished run's file no longer matches what is staged
            elif self.objects.state(other) == STAGED:
                self.objects.mark(other, SUPERSEDED)

    # -- merge ----------------------------------------------------------------------------------

    def merge(self) -> Merged:
        """Merges the month from this run's file (or one a finished run staged: a merge run on its
        own; or, with neither, the month's object) and moves the file into the month's place."""
        stored = self._to_merge()
        if stored is None:
            month_object = self.store.stat(self.file.object_key)
            if month_object is None:
                raise FileNotFoundError(f"{self.file.object_key} is not in the bucket: materialize the month's raw "
                                        "file first")
            return Merged(self._merge(month_object, None), None)
        moved: list[StoredObject] = []
        result = self._merge(stored, lambda: moved.append(self.objects.promote(stored, self.run_id)))
        return Merged(result, moved[0] if moved else None)

    def _to_merge(self) -> StoredObject | None:
        stored = self.objects.pending(self.run_id)
        if stored is None:
            staged = [o for o in self.objects.pendings() if self.objects.state(o) == STAGED
                      and self.run_finished(self.objects.run_of(o))]
            stored = staged[-1] if staged else None
        if stored is None:
            return None
        if self.objects.state(stored) == DOWNLOADED:
            raise RuntimeError(f"{stored.uri} was downloaded by this run but never staged: materialize the staging "
                               "asset first")
        self.objects.mark(stored, MERGING)
        return self.store.stat(stored.key)

    def _merge(self, stored: StoredObject, then: Callable[[], None] | None) -> MergeResult:
        return self.warehouse.merge(self.colour, self.month, raw_file_of(stored, self.file), then)
