"""The bucket: where each month's raw file is kept. A local folder (`local`) or GCS (`gcs`).

Writing goes through `ObjectStore.write`, which hands out a local file to fill and publishes it
only when the block ends without an error, so a reader never sees half a file. `move` replaces
the destination in one step (a rename; on GCS a server-side rewrite, then the source is deleted),
which is how a downloaded file becomes the month's object only once its month is published
(`stores.publication`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class StoreError(OSError):
    """The bucket could not be written or read (disk full, permissions, ...); says which object."""


@dataclass(frozen=True)
class StoredObject:
    uri: str
    size: int
    metadata: dict[str, str]
    key: str = ""


@dataclass
class PendingObject:
    """A file being written: fill `path`, add to `metadata`; published when the block ends."""

    path: Path
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    def uri(self, key: str) -> str:
        """The address the warehouse reads the object from (a local path or a `gs://` URI)."""

    def write(self, key: str) -> contextlib.AbstractContextManager[PendingObject]:
        """Yields a local file to fill; publishes it atomically if the block succeeds."""

    def stat(self, key: str) -> StoredObject | None:
        """The published object, or None if there is none."""

    def list(self, prefix: str) -> list[StoredObject]:
        """The objects whose keys start with `prefix`, with their metadata."""

    def update_metadata(self, key: str, metadata: dict[str, str]) -> None:
        """Adds `metadata` to the object's (same keys replaced); the bytes stay as they are."""

    def move(self, source: str, dest: str, metadata: dict[str, str] | None = None) -> StoredObject:
        """Makes `source`'s bytes and metadata (plus `metadata`) the object `dest`, replacing
        it in one step, then removes `source`."""

    def delete(self, key: str) -> None:
        """Removes the object, if there is one."""

    def remove_leftovers(self, prefix: str) -> list[str]:
        """Removes what killed writers left under `prefix` (never an object); returns the keys."""
