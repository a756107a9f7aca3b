"""The embedded warehouse: one DuckDB file, `$TAXI_HOME/warehouse.duckdb`."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from taxi_pipeline.lib.warehouses import duckdb_sql as sql
from taxi_pipeline.lib.colours import Colour, LogicalType
from taxi_pipeline.lib.identifiers import validate_identifier
from taxi_pipeline.lib.raw_file import RawFile
from taxi_pipeline.lib.sources.base import InvalidFileError
from taxi_pipeline.lib.warehouses.base import MergeResult, MonthStats, StageResult

log = logging.getLogger(__name__)
_CSV_ERROR_LINE = re.compile(r"CSV Error on Line: (\d+)")
_FIELD_COUNT = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


class DuckDBWarehouse:
    """Stages and merges months in one DuckDB file, one writer process at a time.

    DuckDB locks the file for a single writing process; a run that finds it locked waits with
    backoff (up to `lock_timeout_s`) rather than failing a backfill.
    """

    def __init__(
        self, path: str | Path, dataset: str, *, memory_limit: str = "500MB", threads: int = 2,
        lock_timeout_s: float = 900.0,
    ):
        self.path = Path(path)
        self.dataset = validate_identifier("dataset", dataset)
        self.memory_limit = memory_limit
        self.threads = threads
        self.lock_timeout_s = lock_timeout_s

    def table_name(self, table: str) -> str:
        return f"{self.dataset}.{validate_identifier('table', table)}"

    def stage(self, colour: Colour, month: dt.date, raw: RawFile) -> StageResult:
        staging = colour.staging_table(month)
        params = {"path": raw.uri, "filename": raw.file_name}
        building = f"{staging}__building"
        if raw.format == "parquet":
            create = sql.create_staging_from_parquet(self.dataset, colour, building, raw.layout)
        else:
            create = sql.create_staging_table(self.dataset, colour, building)
        number = sql.number_identical_rows(self.dataset, building)
        fingerprint = _fingerprint(raw.md5, raw.file_name, [create, number]) if raw.md5 else None
        with self.connect() as con:
            con.execute(sql.create_schema(self.dataset))
            if fingerprint is not None and self._comment(con, staging) == fingerprint:
                # Built from these very bytes by these very statements: rebuilding would give the
                # same table. Saves the parse and hash (12 s of a yellow month) on re-runs.
                [(rows,)] = con.execute(sql.count_rows(self.dataset, staging)).fetchall()
                return StageResult(self.table_name(staging), rows, reused=True)
            try:
                con.execute(create, params)
            except duckdb.ConversionException as exc:
                if raw.format == "parquet":
                    raise InvalidFileError(raw.file_name, f"a value does not fit its column: {exc}") from exc
                raise self._locate_bad_value(con, colour, raw) from exc
            except duckdb.InvalidInputException as exc:
                if raw.format == "parquet":  # error() of a typed_value, or a corrupt page
                    raise InvalidFileError(raw.file_name, str(exc).splitlines()[0]) from exc
                raise _csv_error(raw.file_name, exc) from exc
            con.execute(number)
            if fingerprint is not None:
                con.execute(sql.comment_on_table(self.dataset, building, fingerprint))
            # Published by a rename, so the merge never reads a half-built staging table; building
            # it outside one big transaction avoids a second, slow commit of the whole month.
            con.execute("BEGIN TRANSACTION")
            con.execute(sql.drop_table(self.dataset, staging))
            con.execute(sql.rename_table(self.dataset, building, staging))
            con.execute("COMMIT")
            [(rows,)] = con.execute(sql.count_rows(self.dataset, staging)).fetchall()
        return StageResult(self.table_name(staging), rows)

    def merge(
        self, colour: Colour, month: dt.date, file_name: str, month_file_names: tuple[str, ...],
    ) -> MergeResult:
        staging = colour.staging_table(month)
        params = {"filename": file_name}
        month_params = sql.month_params(month_file_names)
        n = len(month_file_names)
        with self.connect() as con:
            self._ensure_main_table(con, colour)
            # One transaction: readers see the month before or after, never in between, and a
            # killed run rolls back. Both statements touch only this month's rows (ids embed the
            # file name), which keeps the cost flat as the table grows.
            con.execute("BEGIN TRANSACTION")
            [(before,)] = con.execute(sql.count_month_rows(self.dataset, colour, n), month_params).fetchall()
            if before == 0:
                # A month's first load, as in every backfill: nothing to compare against, so the
                # anti-joins (0.7 s of a 7.7M-row month) are skipped.
                deleted = 0
                [(inserted,)] = con.execute(sql.insert_all_rows(self.dataset, colour, staging)).fetchall()
            else:
                # Also deletes the rows another source's file of this month left (a source switch).
                [(deleted,)] = con.execute(
                    sql.delete_vanished_rows(self.dataset, colour, staging, n), month_params
                ).fetchall()
                [(staged,)] = con.execute(sql.count_rows(self.dataset, staging)).fetchall()
                if before - deleted == staged:
                    # Every remaining id is a staged id (that is what the DELETE left) and there
                    # are as many of them as staged ids, which are distinct: the sets are equal,
                    # so nothing is new. A re-run of an unchanged month skips its costliest join.
                    inserted = 0
                else:
                    [(inserted,)] = con.execute(sql.insert_new_rows(self.dataset, colour, staging), params).fetchall()
            con.execute("COMMIT")
            month_rows = before - deleted + inserted
            [(table_rows,)] = con.execute(sql.count_rows(self.dataset, colour.main_table)).fetchall()
        return MergeResult(self.table_name(colour.main_table), inserted, deleted, month_rows, table_rows)

    def _comment(self, con: duckdb.DuckDBPyConnection, table: str) -> str | None:
        found = con.execute(sql.table_comment(), {"dataset": self.dataset, "name": table}).fetchall()
        return found[0][0] if found else None

    def month_stats(self, colour: Colour, month: dt.date, month_file_names: tuple[str, ...]) -> MonthStats:
        with self.connect() as con:
            self._ensure_main_table(con, colour)
            [(rows, distinct)] = con.execute(
                sql.month_stats(self.dataset, colour, len(month_file_names)), sql.month_params(month_file_names)
            ).fetchall()
        return MonthStats(rows, distinct)

    def _ensure_main_table(self, con: duckdb.DuckDBPyConnection, colour: Colour) -> None:
        con.execute(sql.create_schema(self.dataset))
        con.execute(sql.create_main_table(self.dataset, colour))
        # A table made before the TLC's later columns were known gets them in place (NULL for
        # the months it holds): no reload.
        for column in colour.columns:
            if not column.in_csv:
                con.execute(sql.add_column(self.dataset, colour, column))

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
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
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.1
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                log.info("warehouse %s is locked by another run; waiting %.1f s", self.path, delay)
                time.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, 5.0)

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


def _csv_error(file_name: str, exc: duckdb.Error) -> InvalidFileError:
    text = str(exc)
    line = _CSV_ERROR_LINE.search(text)
    counts = _FIELD_COUNT.search(text)
    if counts:
        problem = f"expected {counts[1]} fields, found {counts[2]}"
    else:
        problem = text.splitlines()[0]
    return InvalidFileError(file_name, problem, line=int(line[1]) if line else None)


def _checked_size(value: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", value):
        raise ValueError(f"invalid memory limit {value!r}, expected e.g. '1GB'")
    return value
