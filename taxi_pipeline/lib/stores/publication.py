"""Where a month's files sit in the bucket on their way in, so that the month's object is always
the file the warehouse's month came from, whatever runs failed or were killed.

Per month (e.g. `green/green_tripdata_2020-10.csv.gz`):
- `green/pending/<run id>/<file>`: downloaded and validated by a run, not published. Its
  `publication` metadata says how far it got: `downloaded`, `staged` (the warehouse's staged month
  was built from it), `superseded` (another run staged since), `merging` (its merge has begun).
- `green/<file>`: the month's object. A pending file becomes it only after the warehouse has
  published its month (the merge step moves it); until then the previous one stays.
- `green/rejected/<file>`: the last file the warehouse refused, with the error in its metadata,
  kept for inspection; never read by a load.

A run killed inside its merge leaves its file `merging`: the next run of the month stages and
merges that file again before its own (both idempotent), then moves it into place, so the bucket
catches up with the warehouse. Nothing here knows Dagster; `defs.publishing` drives it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from taxi_pipeline.lib.stores.base import ObjectStore, StoredObject, StoreError

STATE = "publication"
DOWNLOADED, STAGED, SUPERSEDED, MERGING, PUBLISHED, REJECTED = (
    "downloaded", "staged", "superseded", "merging", "published", "rejected")
# GCS allows 8 KiB of custom metadata per object: the error is cut well short of that.
_MAX_ERROR = 1500


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class MonthObjects:
    store: ObjectStore
    object_key: str  # the month's object, `<colour>/<file>`

    @property
    def _folder(self) -> str:
        return self.object_key.split("/", 1)[0]

    @property
    def _name(self) -> str:
        return self.object_key.rsplit("/", 1)[-1]

    def pending_key(self, run_id: str) -> str:
        return f"{self._folder}/pending/{run_id}/{self._name}"

    @property
    def rejected_key(self) -> str:
        return f"{self._folder}/rejected/{self._name}"

    def month_object(self) -> StoredObject | None:
        return self.store.stat(self.object_key)

    def rejected(self) -> StoredObject | None:
        return self.store.stat(self.rejected_key)

    def pending(self, run_id: str) -> StoredObject | None:
        return self.store.stat(self.pending_key(run_id))

    def pendings(self) -> list[StoredObject]:
        """Every run's pending file of this month, oldest state change first."""
        prefix = f"{self._folder}/pending/"
        found = [o for o in self.store.list(prefix) if o.key.endswith(f"/{self._name}")]
        return sorted(found, key=lambda o: o.metadata.get("publication_at", ""))

    @staticmethod
    def run_of(stored: StoredObject) -> str:
        return stored.key.split("/")[-2]

    @staticmethod
    def state(stored: StoredObject) -> str:
        return stored.metadata.get(STATE, DOWNLOADED)

    def mark(self, stored: StoredObject, state: str) -> None:
        self.store.update_metadata(stored.key, {STATE: state, "publication_at": _now()})

    def promote(self, stored: StoredObject, run_id: str) -> StoredObject:
        """The pending file becomes the month's object (its month is published). Two runs may
        both finish one killed run's file: the second finds it in place already."""
        try:
            return self.store.move(stored.key, self.object_key, {
                STATE: PUBLISHED, "publication_at": _now(), "published_by_run": run_id,
            })
        except StoreError:
            in_place = self.month_object()
            if self.store.stat(stored.key) is None and in_place and in_place.metadata.get("md5") == stored.metadata.get("md5"):
                return in_place
            raise

    def reject(self, stored: StoredObject, run_id: str, error: str) -> StoredObject:
        """The pending file goes aside, with the reason; the month's object stays as it was."""
        return self.store.move(stored.key, self.rejected_key, {
            STATE: REJECTED, "publication_at": _now(), "rejected_by_run": run_id,
            "error": error if len(error) <= _MAX_ERROR else error[: _MAX_ERROR - 3] + "...",
        })

    def discard(self, stored: StoredObject) -> None:
        self.store.delete(stored.key)
