"""The warehouse interface the assets use; DuckDB (`duckdb.warehouse`) and BigQuery implement it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.raw_file import RawFile


class WarehouseBusyError(RuntimeError):
    """The warehouse cannot be read right now without waiting (DuckDB: a run holds the file)."""


class WarehouseDamagedError(RuntimeError):
    """The warehouse's storage cannot be read back whole (DuckDB: a truncated or corrupted file).
    Nothing is written to it: its bytes stay as they are for a restore or an inspection."""


@dataclass(frozen=True)
class StageResult:
    table: str
    rows: int
    reused: bool = False  # the staging table was already built from these bytes by this code
    # What the engine reports of the step's work, for the UI (BigQuery: bytes billed, slot-ms).
    metadata: dict[str, int | float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class MergeResult:
    table: str
    inserted: int
    deleted: int
    month_rows: int  # rows of this file in the main table after the merge
    table_rows: int  # rows of every file in the main table
    metadata: dict[str, int | float | str] = field(default_factory=dict)  # as StageResult's


@dataclass(frozen=True)
class MonthStats:
    rows: int
    distinct_ids: int


class Warehouse(Protocol):
    def stage(self, colour: Colour, month: dt.date, raw: RawFile) -> StageResult:
        """(Re)creates the month's staging table from the raw object, adding the row ids.

        With the object's MD5, a warehouse may keep a staging table it built from the same bytes
        with the same statements (a re-run of an unchanged month) instead of building it again.
        """

    def merge(self, colour: Colour, month: dt.date, raw: RawFile, then: Callable[[], None] | None = None) -> MergeResult:
        """Makes the main table's rows of the month exactly the rows of `raw`, atomically, from the
        table staged from `raw` (staged again if another file's table stands in its place), so a
        month is never merged from a file other than the one the caller then moves into the
        month's place: `then`, run once the merge has committed (DuckDB: still holding the file's
        one writer lock). Rows of the month's file at another source are replaced too.
        """

    def month_stats(self, colour: Colour, month: dt.date) -> MonthStats:
        """Counts the month's rows and distinct row ids in the main table."""

    def loaded_months(self, colour: Colour) -> dict[dt.date, int]:
        """The months the main table holds rows of, with their row counts: what the schedules
        and sensors trust, rather than Dagster's records (a table may have been changed by hand).
        Raises `WarehouseBusyError` rather than wait."""

    def ensure_main_tables(self, colours: Iterable[Colour]) -> None:
        """Makes each colour's main table where it is missing, empty: the analytics models read
        both colours' tables, also before a colour's first month lands. Waits for the warehouse as
        a merge does."""

    def table_name(self, table: str) -> str:
        """The fully qualified name a user queries, e.g. `zoomcamp.green_tripdata`."""
