"""What the operators' commands see of a target (`Admin`): its tables and objects, and the errors
of the commands. Implemented by `admin.local` (DuckDB + a folder) and `admin.gcp` (BigQuery +
GCS); each target makes its own (`Target.admin`, `lib.targets`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.warehouses.shape import AdoptResult, ShapeReport


class OperatorError(Exception):
    """A command could not do its work; the message says why. Exit code 1."""

    exit_code = 1


class ConfigError(OperatorError):
    """The environment does not say what to work on (a usage error). Exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class TableInfo:
    name: str  # as the dataset lists it
    qualified: str  # as a user queries it
    rows: int
    bytes: int
    kind: str = "table"  # or "view": its rows are the tables', counted there


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class MainTable:
    colour: Colour
    qualified: str
    files: list[tuple[str, int, int]]  # filename, rows, distinct unique_row_id
    report: ShapeReport


class Admin(Protocol):
    warehouse_label: str
    bucket_label: str
    notes: list[str]  # for stderr, e.g. "read from a snapshot copy"

    def main_tables(self, colours: list[Colour]) -> list[MainTable]:
        """The colours' main tables that exist, with rows per file."""

    def tables(self, keep: Callable[[str], bool]) -> list[TableInfo]:
        """The dataset's tables whose name `keep` accepts, with their sizes."""

    def drop_tables(self, names: list[str]) -> None: ...

    def adopt(self, colour: Colour, keep_backup: bool) -> AdoptResult: ...

    def objects(self, prefix: str) -> list[ObjectInfo]:
        """The bucket's objects under `prefix` (e.g. `green/`), with their sizes."""

    def delete_objects(self, keys: list[str]) -> None: ...
