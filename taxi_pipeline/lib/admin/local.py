"""The embedded target's admin: the DuckDB file and the bucket folder under `$TAXI_HOME`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from taxi_pipeline.lib.admin.base import MainTable, ObjectInfo, OperatorError, TableInfo
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.warehouses.duckdb import admin
from taxi_pipeline.lib.warehouses.shape import AdoptResult


class LocalAdmin:
    def __init__(self, path: Path, dataset: str, bucket_root: Path):
        self.path = Path(path)
        self.dataset = dataset
        self.bucket_root = Path(bucket_root)
        self.warehouse_label = f"DuckDB {self.path}, schema {dataset}"
        self.bucket_label = f"folder {self.bucket_root}"
        self.notes: list[str] = []

    def main_tables(self, colours: list[Colour]) -> list[MainTable]:
        if not self.path.exists():
            raise OperatorError(f"no warehouse at {self.path}: load a month first")
        found = []
        with admin.reading(self.path) as (con, note):
            self._note(note)
            for colour in colours:
                report = admin.main_table_report(con, self.dataset, colour)
                if report is not None:
                    files = admin.file_counts(con, self.dataset, colour.main_table)
                    found.append(MainTable(colour, report.table, files, report))
        return found

    def tables(self, keep: Callable[[str], bool]) -> list[TableInfo]:
        if not self.path.exists():  # never create the file just to list nothing
            return []
        with admin.reading(self.path) as (con, note):
            self._note(note)
            return [
                TableInfo(name, f"{self.dataset}.{name}", *self._size(con, name, kind), kind)
                for name, kind in admin.relations(con, self.dataset).items() if keep(name)
            ]

    def _size(self, con, name: str, kind: str) -> tuple[int, int]:
        if kind == "view":
            return 0, 0
        return admin.count_rows(con, self.dataset, name), admin.table_bytes(con, self.dataset, name)

    def drop_tables(self, names: list[str]) -> None:
        if names:
            with admin.connect(self.path, read_only=False) as con:
                admin.drop_relations(con, self.dataset, names)

    def adopt(self, colour: Colour, keep_backup: bool) -> AdoptResult:
        # keep_backup has nothing to keep here: DuckDB converts in one transaction, all or nothing.
        if not self.path.exists():
            raise OperatorError(f"no warehouse at {self.path}: nothing to adopt")
        with admin.connect(self.path, read_only=False) as con:
            return admin.adopt(con, self.dataset, colour)

    def objects(self, prefix: str) -> list[ObjectInfo]:
        folder = self.bucket_root / prefix
        if not folder.is_dir():
            return []
        # Everything under the colour's folder: objects, their `.meta.json`, `.part` leftovers.
        return [
            ObjectInfo(path.relative_to(self.bucket_root).as_posix(), path.stat().st_size)
            for path in sorted(folder.rglob("*")) if path.is_file()
        ]

    def delete_objects(self, keys: list[str]) -> None:
        for key in keys:
            (self.bucket_root / key).unlink(missing_ok=True)
        for key in {k.split("/")[0] for k in keys}:
            folders = sorted((p for p in (self.bucket_root / key).rglob("*") if p.is_dir()), reverse=True)
            for folder in [*folders, self.bucket_root / key]:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()

    def _note(self, note: str | None) -> None:
        if note and note not in self.notes:
            self.notes.append(note)
