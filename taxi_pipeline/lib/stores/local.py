"""The embedded bucket: a local folder, `$TAXI_HOME/bucket`."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from taxi_pipeline.lib.identifiers import validate_object_key
from taxi_pipeline.lib.stores.base import PendingObject, StoredObject, StoreError


class LocalObjectStore:
    """A folder used as a bucket (`$TAXI_HOME/bucket`); metadata sits beside each object as JSON."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).absolute()

    def uri(self, key: str) -> str:
        return str(self._path(key))

    @contextlib.contextmanager
    def write(self, key: str) -> Iterator[PendingObject]:
        final = self._path(key)
        # The part file sits beside the final one, so publishing is a rename on one file system.
        part = final.with_name(f".{final.name}.{os.getpid()}.part")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            pending = PendingObject(part)
            yield pending
            _write_json(_meta_path(final), {"size": str(part.stat().st_size), **pending.metadata})
            os.replace(part, final)
        except OSError as exc:
            raise StoreError(f"cannot write bucket object {final}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):  # the error above, if any, is the one to report
                part.unlink(missing_ok=True)

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            metadata = json.loads(_meta_path(path).read_text())
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if metadata.get("size") != str(size):
            return None  # the object and its metadata are from different writes
        return StoredObject(str(path), size, metadata)

    def _path(self, key: str) -> Path:
        return self.root / validate_object_key(key)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _write_json(path: Path, data: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
