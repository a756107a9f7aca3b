"""The bucket: where each month's raw file is kept. A local folder (`local`) or GCS (`gcs`).

Writing goes through `ObjectStore.write`, which hands out a local file to fill and publishes it
only when the block ends without an error, so a reader never sees half a file.
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
