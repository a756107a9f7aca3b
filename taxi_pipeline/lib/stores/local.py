"""The embedded bucket: a local folder, `$TAXI_HOME/bucket`.

Metadata sits beside each object as JSON (`<object>.meta.json`), as one or two versions, each
naming the size and modification time of the bytes it describes: replacing an object writes the
new version beside the old one first, then renames the bytes into place, so a run killed at any
instant leaves every object with the metadata of its own bytes (a rename keeps the mtime).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from taxi_pipeline.lib.identifiers import validate_object_key
from taxi_pipeline.lib.stores.base import PendingObject, StoredObject, StoreError

_META = ".meta.json"


class LocalObjectStore:
    """A folder used as a bucket (`$TAXI_HOME/bucket`)."""

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
            self._replace(part, final, dict(pending.metadata))
        except OSError as exc:
            raise StoreError(f"cannot write bucket object {final}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):  # the error above, if any, is the one to report
                part.unlink(missing_ok=True)
                if not final.exists():
                    _remove_empty_folders(final.parent, self.root)

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            facts = path.stat()
            versions = _read_versions(_meta_path(path))
        except FileNotFoundError:
            return None
        found = _matching(versions, facts)
        if found is None:
            return None  # metadata of other bytes: not a published object
        metadata = {k: v for k, v in found.items() if k != "mtime_ns"}
        return StoredObject(str(path), facts.st_size, metadata, key)

    def list(self, prefix: str) -> list[StoredObject]:
        folder, _, start = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return []
        found = []
        for path in sorted(base.rglob("*")):
            name = path.relative_to(self.root).as_posix()
            if path.is_file() and not path.name.endswith(_META) and not path.name.startswith(".") and name.startswith(prefix):
                stored = self.stat(name)
                if stored is not None:
                    found.append(stored)
        return found

    def remove_leftovers(self, prefix: str) -> list[str]:
        """Removes the part files under `prefix` that a killed process left (`.<name>.<pid>.part`,
        the pid no longer running): `list` never shows them, so nothing else would. Returns their keys."""
        base = self.root / prefix.rstrip("/")
        removed = []
        for path in sorted(base.rglob(".*.part")) if base.is_dir() else []:
            pid = path.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _running(int(pid)):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path.relative_to(self.root).as_posix())
                    _remove_empty_folders(path.parent, self.root)
        return removed

    def update_metadata(self, key: str, metadata: dict[str, str]) -> None:
        path = self._path(key)
        stored = self.stat(key)
        if stored is None:
            raise StoreError(f"cannot update bucket object {path}: it does not exist")
        try:
            _write_versions(_meta_path(path), [_version(path.stat(), {**stored.metadata, **metadata})])
        except OSError as exc:
            raise StoreError(f"cannot update bucket object {path}: {exc}") from exc

    def move(self, source: str, dest: str, metadata: dict[str, str] | None = None) -> StoredObject:
        src, final = self._path(source), self._path(dest)
        stored = self.stat(source)
        if stored is None:
            raise StoreError(f"cannot move bucket object {src}: it does not exist")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._replace(src, final, {**stored.metadata, **(metadata or {})})
            _meta_path(src).unlink(missing_ok=True)
            _remove_empty_folders(src.parent, self.root)
        except OSError as exc:
            raise StoreError(f"cannot move bucket object {src} to {final}: {exc}") from exc
        return self.stat(dest)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            _meta_path(path).unlink(missing_ok=True)
            _remove_empty_folders(path.parent, self.root)
        except OSError as exc:
            raise StoreError(f"cannot delete bucket object {path}: {exc}") from exc

    def _replace(self, part: Path, final: Path, metadata: dict[str, str]) -> None:
        """`part` becomes `final`: the new metadata version is written beside the old one, then
        the bytes are renamed into place, then the old version is dropped."""
        new = _version(part.stat(), metadata)
        meta = _meta_path(final)
        try:
            old = _matching(_read_versions(meta), final.stat())
        except FileNotFoundError:
            old = None
        _write_versions(meta, [new] if old is None else [old, new])
        os.replace(part, final)
        _write_versions(meta, [new])

    def _path(self, key: str) -> Path:
        return self.root / validate_object_key(key)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + _META)


def _version(facts: os.stat_result, metadata: dict[str, str]) -> dict[str, str]:
    return {**metadata, "size": str(facts.st_size), "mtime_ns": str(facts.st_mtime_ns)}


def _matching(versions: list[dict[str, str]], facts: os.stat_result) -> dict[str, str] | None:
    for version in reversed(versions):
        if version.get("size") != str(facts.st_size):
            continue
        # Metadata written before versions were kept has no mtime: the size must do.
        if version.get("mtime_ns", str(facts.st_mtime_ns)) == str(facts.st_mtime_ns):
            return version
    return None


def _read_versions(path: Path) -> list[dict[str, str]]:
    data = json.loads(path.read_text())
    return data["versions"] if isinstance(data.get("versions"), list) else [data]


def _write_versions(path: Path, versions: list[dict[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps({"versions": versions}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _remove_empty_folders(folder: Path, root: Path) -> None:
    """A run's pending folder goes once its file has moved on; the colour's folder stays."""
    while folder != root and folder.parent != root:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
