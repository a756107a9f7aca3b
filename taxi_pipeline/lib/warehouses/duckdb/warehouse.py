"""The embedded warehouse: one DuckDB file, `$TAXI_HOME/warehouse.duckdb`."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import duckdb

from taxi_pipeline.lib.colours import Colour, LogicalType
from taxi_pipeline.lib.identifiers import validate_dataset, validate_identifier
from taxi_pipeline.lib.raw_file import RawFile
from taxi_pipeline.lib.sources.base import InvalidFileError
from taxi_pipeline.lib.warehouses.base import (
    MergeResult,
    MonthStats,
    StageResult,
    WarehouseBusyError,
    WarehouseDamagedError,
)
from taxi_pipeline.lib.warehouses.duckdb import sql
from taxi_pipeline.lib.warehouses.duckdb.admin import main_table_report
from taxi_pipeline.lib.warehouses.duckdb.errors import csv_error, damage_message, is_damage
from taxi_pipeline.lib.warehouses.duckdb.lock_wait import (
    LOCK_TAKEN,
    holder_of,
    is_lock_conflict,
    lock_wait_message,
    locked_message,
)
from taxi_pipeline.lib.warehouses.shape import require_ours

_logger = logging.getLogger(__name__)
_LOCK_LOG_EVERY_S = 30.0
# The longest pause between two tries for the lock. This wait is what hands the file from one
# run's staging to the next (staging takes no pool slot: `LocalTarget.pools`), so a short pause
# keeps the file busy; a try costs an open() that fails, not a scan.
_LOCK_RETRY_MAX_S = 1.0


class DuckDBWarehouse:
    """Stages and publishes months in one DuckDB file, one writer process at a time.

    One copy of each month: the staged month's table becomes the month's table when the merge
    publishes it, and the main table is a view over the month tables (see `duckdb.sql`).

    DuckDB locks the file for a single writing process; a run that finds it locked waits with
    backoff (up to `lock_timeout_s`) rather than failing a backfill, and says in `log` (the run's
    log) who holds the file and for how long it has waited.
    """

    def __init__(
        self, path: str | Path, dataset: str, *, memory_limit: str = "500MB", threads: int = 2,
        lock_timeout_s: float = 900.0, log: Callable[[str], None] | None = None,
    ):
        self.path = Path(path)
        self.dataset = validate_dataset(dataset)
        self.memory_limit = memory_limit
        self.threads = threads
        self.lock_timeout_s = lock_timeout_s
        self.log = log or _logger.info

    def table_name(self, table: str) -> str:
        return f"{self.dataset}.{validate_identifier('table', table)}"

    def stage(self, colour: Colour, month: dt.date, raw: RawFile) -> StageResult:
        """Builds the month into `<month table>__next`, unless the month table or the staged table was built
        already from the same bytes by the same code (a re-run: nothing to build)."""
        with self.connect() as con:
            self._ensure_layout(con, colour)  # a table of another shape: touch nothing
            return self._stage_in(con, colour, month, raw)

    def _statements(self, colour: Colour, raw: RawFile, building: str) -> tuple[str, str, str | None]:
        """The staging statements for `raw`, and the fingerprint they give a table built from it."""
        if raw.format == "parquet":
            create = sql.create_staging_from_parquet(self.dataset, colour, building, raw.layout)
        else:
            create = sql.create_staging_table(self.dataset, colour, building)
        number = sql.number_identical_rows(self.dataset, building)
        return create, number, _fingerprint(raw.md5, raw.file_name, [create, number]) if raw.md5 else None

    def _stage_in(self, con: duckdb.DuckDBPyConnection, colour: Colour, month: dt.date, raw: RawFile) -> StageResult:
        month_table = colour.month_table(month)
        staged, building = f"{month_table}__next", f"{month_table}__building"
        create, number, fingerprint = self._statements(colour, raw, building)
        reused = self._reused(con, raw, fingerprint, month_table, staged)
        if reused is not None:
            return reused
        try:
            con.execute(create, {"path": raw.uri, "filename": raw.file_name})
        except duckdb.Error as exc:
            error = self._staging_error(con, colour, raw, exc)
            if error is exc:
                raise
            raise error from exc
        with self._aggregating(con):
            con.execute(number)
        if fingerprint is not None:
            con.execute(sql.comment_on_table(self.dataset, building, fingerprint))
        # Renamed when complete, so the merge never publishes a half-built month; building it
        # outside one big transaction avoids a second, slow commit of the whole month.
        con.execute("BEGIN TRANSACTION")
        con.execute(sql.drop_table(self.dataset, staged))
        con.execute(sql.rename_table(self.dataset, building, staged))
        con.execute("COMMIT")
        [(rows,)] = con.execute(sql.count_rows(self.dataset, staged)).fetchall()
        return StageResult(self.table_name(staged), rows)

    def _reused(self, con: duckdb.DuckDBPyConnection, raw: RawFile, fingerprint: str | None, month_table: str,
                staged: str) -> StageResult | None:
        """The month table or the staged table, if built from these very bytes by these very
        statements: rebuilding would give the same table (unless rows were deleted from it by hand
        since). Saves the parse and hash of a re-run (12 s of a yellow month)."""
        if fingerprint is None:
            return None
        for name in (month_table, staged):
            if self._comment(con, name) != fingerprint:
                continue
            [(rows,)] = con.execute(sql.count_rows(self.dataset, name)).fetchall()
            if raw.rows is not None and rows != raw.rows:
                continue
            # Kept only if it reads whole: a count is the table's metadata, while damage (a
            # truncated or corrupted file) shows only when its blocks are read.
            con.execute(sql.read_every_column(self.dataset, name)).fetchall()
            if name == month_table:
                con.execute(sql.drop_table(self.dataset, staged))  # a stale build
            return StageResult(self.table_name(name), rows, reused=True)
        return None

    def _staging_error(self, con: duckdb.DuckDBPyConnection, colour: Colour, raw: RawFile,
                       exc: duckdb.Error) -> Exception:
        """What a failed staging statement says to a user: the file's fault, with the line and
        column where it can be found, or the warehouse's own error as it is."""
        parquet = raw.format == "parquet"
        if isinstance(exc, duckdb.ConversionException):
            if parquet:
                return InvalidFileError(raw.file_name, f"a value does not fit its column: {exc}")
            return self._locate_bad_value(con, colour, raw)
        if isinstance(exc, duckdb.InvalidInputException):
            if parquet:  # error() of a typed_value, or a corrupt page
                return InvalidFileError(raw.file_name, str(exc).splitlines()[0])
            if sql.NOT_AN_INTEGER in str(exc):  # error() of a csv_value: say on which line
                return self._locate_bad_value(con, colour, raw)
            return csv_error(raw.file_name, exc, colour.header)
        # A damaged data page of a Parquet file whose footer is intact (DuckDB 2.0.1 says "don't
        # know what type"); the warehouse's own faults are not the file's.
        if not parquet or is_damage(str(exc)) or isinstance(exc, (duckdb.IOException, duckdb.OutOfMemoryException)):
            return exc
        return InvalidFileError(raw.file_name, (
            f"a data page cannot be read ({str(exc).splitlines()[0]!r}): the file is damaged; "
            "its footer and schema were intact, so the download looked whole"))

    def merge(self, colour: Colour, month: dt.date, raw: RawFile, then: Callable[[], None] | None = None) -> MergeResult:
        """Publishes the month staged from `raw`: its table takes the month table's name, and the
        main view is rebuilt over the months, in one transaction. Nothing is copied, so the cost
        does not grow with the table; the month's rows are exactly the file's, whichever source's
        file the month held before. A re-run of a merged month changes nothing.

        The month is tied to `raw` by construction: if the staged table was built from other
        bytes (a concurrent run of the month staged its own file since), it is built again from
        `raw` first, all under the file's one writer lock, and `then` (moving the file into the
        month's place in the bucket) runs before the lock is let go, so no other run's merge
        comes between the month and its object."""
        month_table = colour.month_table(month)
        staged = f"{month_table}__next"
        with self.connect() as con:
            self._ensure_layout(con, colour)
            fingerprint = self._statements(colour, raw, f"{month_table}__building")[2]
            if fingerprint is not None and self._comment(con, staged) != fingerprint and (
                    self._exists(con, staged) or self._comment(con, month_table) != fingerprint):
                self.log(f"{self.table_name(staged)} does not hold {raw.file_name} (md5 {raw.md5}): another run of "
                         "the month staged its own file since; staging this run's file again before the merge")
                self._stage_in(con, colour, month, raw)
            result = self._swap_in(con, colour, month)
            if then is not None:
                then()
        return result

    def _swap_in(self, con: duckdb.DuckDBPyConnection, colour: Colour, month: dt.date) -> MergeResult:
        month_table = colour.month_table(month)
        staged = f"{month_table}__next"
        if not self._exists(con, staged):
            if not self._exists(con, month_table):
                raise RuntimeError(f"{self.table_name(month_table)} is not staged: materialize the staging asset first")
            [(rows,)] = con.execute(sql.count_rows(self.dataset, month_table)).fetchall()
            return MergeResult(self.table_name(colour.main_table), 0, 0, rows, self._table_rows(con, colour))
        [(month_rows,)] = con.execute(sql.count_rows(self.dataset, staged)).fetchall()
        # One transaction: readers see the month before or after, never in between, and a
        # killed run rolls back to the month as it was.
        con.execute("BEGIN TRANSACTION")
        if self._exists(con, month_table):
            # What changed, for the run's metadata: ids gone, and ids new (ids are distinct
            # within a month, so new = staged - (month table - vanished)).
            [(before,)] = con.execute(sql.count_rows(self.dataset, month_table)).fetchall()
            [(deleted,)] = con.execute(sql.count_vanished_ids(self.dataset, month_table, staged)).fetchall()
            inserted = month_rows - (before - deleted)
            con.execute(sql.drop_table(self.dataset, month_table))
        else:
            inserted, deleted = month_rows, 0
        con.execute(sql.rename_table(self.dataset, staged, month_table))
        self._rebuild_main_view(con, colour)
        con.execute("COMMIT")
        return MergeResult(self.table_name(colour.main_table), inserted, deleted, month_rows, self._table_rows(con, colour))

    def _comment(self, con: duckdb.DuckDBPyConnection, table: str) -> str | None:
        found = con.execute(sql.table_comment(), {"dataset": self.dataset, "name": table}).fetchall()
        return found[0][0] if found else None

    def month_stats(self, colour: Colour, month: dt.date) -> MonthStats:
        month_table = colour.month_table(month)
        with self.connect() as con:
            self._ensure_layout(con, colour)
            if not self._exists(con, month_table):
                return MonthStats(0, 0)
            with self._aggregating(con):
                [(rows, distinct)] = con.execute(sql.month_stats(self.dataset, month_table)).fetchall()
        return MonthStats(rows, distinct)

    def ensure_main_tables(self, colours: Iterable[Colour]) -> None:
        with self.connect() as con:
            for colour in colours:
                self._ensure_layout(con, colour)

    def loaded_months(self, colour: Colour) -> dict[dt.date, int]:
        """The months the main table holds, with their rows (month tables with rows).

        Reads without waiting: a run holding the file makes this raise `WarehouseBusyError`."""
        if not self.path.exists():
            return {}
        try:
            with self._damage_named():
                con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.IOException as exc:
            if is_lock_conflict(str(exc)):
                raise WarehouseBusyError(locked_message(self.path, str(exc))) from exc
            raise
        with con, self._damage_named():
            months = {}
            for name in self._month_tables(con, colour):
                [(rows,)] = con.execute(sql.count_rows(self.dataset, name)).fetchall()
                if rows:
                    months[dt.date(int(name[-7:-3]), int(name[-2:]), 1)] = rows
        return months

    def _exists(self, con: duckdb.DuckDBPyConnection, name: str) -> bool:
        return self._relation_type(con, name) is not None

    def _relation_type(self, con: duckdb.DuckDBPyConnection, name: str) -> str | None:
        found = con.execute(sql.relation_type(), {"dataset": self.dataset, "name": name}).fetchall()
        return found[0][0] if found else None

    def _table_rows(self, con: duckdb.DuckDBPyConnection, colour: Colour) -> int:
        [(rows,)] = con.execute(sql.count_rows_of_tables(self.dataset, self._month_tables(con, colour))).fetchall()
        return rows

    def _month_tables(self, con: duckdb.DuckDBPyConnection, colour: Colour) -> list[str]:
        params = {"dataset": self.dataset, "pattern": colour.month_table_pattern}
        return [name for (name,) in con.execute(sql.month_tables(), params).fetchall()]

    def _rebuild_main_view(self, con: duckdb.DuckDBPyConnection, colour: Colour) -> None:
        con.execute(sql.create_main_view(self.dataset, colour, self._month_tables(con, colour)))

    def _ensure_layout(self, con: duckdb.DuckDBPyConnection, colour: Colour) -> None:
        """The schema, and the main view if it is missing. A main table of another shape or layout
        (the course's Kestra table, this project's earlier one) is refused before anything is
        written: `adopt` converts it, once (`admin.adopt`)."""
        con.execute(sql.create_schema(self.dataset))
        if require_ours(colour, main_table_report(con, self.dataset, colour)) is None:
            self._rebuild_main_view(con, colour)

    @contextlib.contextmanager
    def _aggregating(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """One thread more for a hash aggregate over a month's ids (the numbering of copies, the
        check's distinct count). Measured on 2 cores and 7.7M ids: 0.5 s with 2 threads, 0.25 s
        with 3, in any memory limit; the bulk load itself keeps `threads`, as DuckDB's default."""
        con.execute(f"SET threads = {int(self.threads) + 1}")
        try:
            yield
        finally:
            con.execute(f"SET threads = {int(self.threads)}")

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that waits for the file's lock; a damaged file raises WarehouseDamagedError."""
        with self._damage_named():
            with self._connection(read_only) as con:
                yield con

    @contextlib.contextmanager
    def _damage_named(self) -> Iterator[None]:
        try:
            yield
        except duckdb.Error as exc:
            if not is_damage(str(exc)):
                raise
            raise WarehouseDamagedError(damage_message(self.path, str(exc))) from exc

    @contextlib.contextmanager
    def _connection(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect_waiting_for_lock(read_only)
        try:
            con.execute(f"SET memory_limit = '{_checked_size(self.memory_limit)}'")
            con.execute(f"SET threads = {int(self.threads)}")
            # Lets big months spill to disk instead of growing the process; order is not needed.
            con.execute("SET preserve_insertion_order = false")
            con.execute("SET enable_progress_bar = false")  # run logs, not a terminal
            yield con
        finally:
            con.close()

    def _connect_waiting_for_lock(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        started = time.monotonic()
        delay, next_log, last_conflict = 0.1, started, None
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                if last_conflict is not None:  # the wait's end, for the run's log (and the backfill benchmark)
                    self.log(f"{LOCK_TAKEN} {self.path} after {time.monotonic() - started:.1f} s of waiting "
                             f"for {holder_of(last_conflict).describe()}")
                return con
            except duckdb.IOException as exc:
                waited = time.monotonic() - started
                if not is_lock_conflict(str(exc)):
                    raise
                if waited > self.lock_timeout_s:
                    raise TimeoutError(lock_wait_message(self.path, str(exc), waited, gave_up=True)) from exc
                last_conflict = str(exc)  # its holder is looked up once, when the wait ends
                if time.monotonic() >= next_log:  # the first wait, then every 30 s: not a line per retry
                    self.log(lock_wait_message(self.path, str(exc), waited, timeout_s=self.lock_timeout_s))
                    next_log = time.monotonic() + _LOCK_LOG_EVERY_S
                time.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, _LOCK_RETRY_MAX_S)

    def _locate_bad_value(self, con: duckdb.DuckDBPyConnection, colour: Colour, raw: RawFile) -> InvalidFileError:
        """Finds the first line and column whose text does not cast, for a message a user can act on."""
        con.execute("SET threads = 1")
        con.execute("SET preserve_insertion_order = true")
        typed = [c for c in colour.csv_columns if c.type is not LogicalType.STRING]
        first_lines = con.execute(sql.first_bad_value(colour), {"path": raw.uri}).fetchone()
        bad = sorted((line, i) for i, line in enumerate(first_lines) if line is not None)
        file_name = raw.file_name
        if not bad:
            return InvalidFileError(file_name, "a value could not be converted to its column's type")
        line, index = bad[0]
        column = typed[index]
        params = {"path": raw.uri, "line": line}
        [(value,)] = con.execute(sql.field_at_line(colour, column.name), params).fetchall()
        return InvalidFileError(file_name, f"column {column.name}: {value!r} is not a valid {column.type.value}", line=line)


def _fingerprint(source_md5: str, file_name: str, statements: list[str]) -> str:
    """What a staging table is a function of: the file's bytes and name, the SQL, DuckDB's version."""
    parts = [source_md5, file_name, duckdb.__version__, *statements]
    return hashlib.md5("\x1f".join(parts).encode()).hexdigest()


def _checked_size(value: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", value):
        raise ValueError(f"invalid memory limit {value!r}, expected e.g. '1GB'")
    return value
