"""Operators' work on the embedded warehouse, which the pipeline itself never does: read the main
table's shape, count, list and drop tables, adopt a main table of another shape or layout (the
course's Kestra table, or this project's earlier layout: every month in one table, hex ids).

Identifiers are validated and quoted; values are bound. Functions take an open connection, so the
same code serves a connection of the warehouse (the shape check) and one of the CLI.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb

from taxi_pipeline.lib.colours import Colour, Column
from taxi_pipeline.lib.warehouses.duckdb import sql
from taxi_pipeline.lib.warehouses.duckdb.lock_wait import is_lock_conflict, locked_message
from taxi_pipeline.lib.warehouses.duckdb.sql import ID_TYPE, TYPES, id_from_hex_digest, q, table
from taxi_pipeline.lib.warehouses.shape import (
    AdoptError,
    AdoptResult,
    Conversion,
    Shape,
    ShapeReport,
    compare,
    expected_columns,
    plan_conversions,
    require_ours,
)

ADOPTING_SUFFIX = "__adopting"
_FILE_MONTH = re.compile(r"_(\d{4}-\d{2})\.")  # green_tripdata_2019-01.csv, ..._2024-01.parquet
# What a table that holds every month lacks: this project keeps one table per month, and the main
# table is a view over them (`duckdb.sql`), so that a month is replaced by a rename.
ONE_TABLE = "a table holding every month: this project keeps a table per month under a view of this name"


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB file; the message names it."""


def check_main_table(con: duckdb.DuckDBPyConnection, dataset: str, colour: Colour) -> tuple[Column, ...]:
    """Raises `ForeignTableError` if the colour's main table exists and is not this project's;
    returns the TLC-added columns it lacks. A table that does not exist yet passes."""
    report = require_ours(colour, main_table_report(con, dataset, colour))
    return () if report is None else report.to_add


def expected_shape(colour: Colour) -> Shape:
    return Shape(expected_columns(colour, TYPES, ID_TYPE))


def main_table_report(con: duckdb.DuckDBPyConnection, dataset: str, colour: Colour) -> ShapeReport | None:
    """The live main table against this project's shape and layout (a view over month tables);
    None if there is no such table. One catalog query: every step asks it."""
    rows = con.execute(
        "SELECT c.column_name, c.data_type, t.table_type FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE c.table_schema = $dataset AND c.table_name = $name ORDER BY c.ordinal_position",
        {"dataset": dataset, "name": colour.main_table},
    ).fetchall()
    if not rows:
        return None
    shown = f"{dataset}.{colour.main_table}"
    report = compare(shown, colour, Shape({name: kind for name, kind, _ in rows}), expected_shape(colour),
                     partitioning=False)
    if rows[0][2] != "VIEW":
        return replace(report, differences=(*report.differences, ONE_TABLE))
    return report


def relations(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, str]:
    """Table name -> 'table' or 'view' (the main table is a view over the month tables)."""
    rows = con.execute(
        "SELECT table_name, CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END "
        "FROM information_schema.tables WHERE table_schema = $dataset ORDER BY table_name",
        {"dataset": dataset},
    ).fetchall()
    return dict(rows)


def count_rows(con: duckdb.DuckDBPyConnection, dataset: str, name: str) -> int:
    [(rows,)] = con.execute(f"SELECT count(*) FROM {table(dataset, name)}").fetchall()
    return rows


def table_bytes(con: duckdb.DuckDBPyConnection, dataset: str, name: str) -> int:
    """Bytes of the file's blocks the table uses (DuckDB keeps no per-table size; this is close)."""
    [(blocks,)] = con.execute(
        "SELECT count(DISTINCT block) FROM (SELECT unnest(list_prepend(block_id, additional_block_ids)) "
        "AS block FROM pragma_storage_info($name)) WHERE block >= 0",
        {"name": f"{q(dataset)}.{q(name)}"},
    ).fetchall()
    [(block_size,)] = con.execute("SELECT block_size FROM pragma_database_size() LIMIT 1").fetchall()
    return blocks * block_size


def file_counts(con: duckdb.DuckDBPyConnection, dataset: str, name: str) -> list[tuple[str, int, int]]:
    """Rows and distinct ids per `filename`: what `counts` prints."""
    return con.execute(
        f"SELECT filename, count(*), count(DISTINCT unique_row_id) FROM {table(dataset, name)} "
        "GROUP BY ALL ORDER BY filename"
    ).fetchall()


def drop_relations(con: duckdb.DuckDBPyConnection, dataset: str, names: list[str]) -> None:
    """Tables and views, all or none: one transaction."""
    con.execute("BEGIN TRANSACTION")
    _drop(con, dataset, names)
    con.execute("COMMIT")


def _drop(con: duckdb.DuckDBPyConnection, dataset: str, names: list[str]) -> None:
    kinds = relations(con, dataset)
    for name in names:
        if name in kinds:
            con.execute(f"DROP {'VIEW' if kinds[name] == 'view' else 'TABLE'} {table(dataset, name)}")


@contextlib.contextmanager
def connect(path: Path, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection, or `WarehouseLockedError` naming the holder at once (an operator is waiting)."""
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if not is_lock_conflict(str(exc)):
            raise
        raise WarehouseLockedError(locked_message(path, str(exc))) from exc
    try:
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def reading(path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, str | None]]:
    """A read-only connection and None; or, while a writer holds the file, one to a copy of it and
    a note saying so. DuckDB lets no other process open a file a writer holds, not even to read."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if not is_lock_conflict(str(exc)):
            raise
        note = locked_message(path, str(exc))
    else:
        with contextlib.closing(con):
            yield con, None
        return
    with (
        tempfile.TemporaryDirectory(prefix="taxi-snapshot-") as tmp,
        contextlib.closing(_open_snapshot(path, Path(tmp))) as copy,
    ):
        yield copy, f"{note}\nread from a copy of the file taken at {dt.datetime.now():%H:%M:%S}"


def _open_snapshot(path: Path, folder: Path, attempts: int = 3) -> duckdb.DuckDBPyConnection:
    """Copies the file and its write-ahead log, and opens the copy read-only; a copy taken during
    the writer's checkpoint may not open, so it is taken again."""
    copy = folder / path.name
    for attempt in range(1, attempts + 1):
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + ".wal")
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
        try:
            return duckdb.connect(str(copy), read_only=True)
        except duckdb.Error:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def adopt(con: duckdb.DuckDBPyConnection, dataset: str, colour: Colour) -> AdoptResult:
    """Converts the colour's main table to this project's layout, keeping every row, in one
    transaction (a failure anywhere leaves everything as it was): one table per month, its rows
    converted to this project's columns, under a view of the main table's name. Each month's
    rows are read once, straight into its month table."""
    report = main_table_report(con, dataset, colour)
    if report is None:
        raise AdoptError(f"there is no table {dataset}.{colour.main_table}: nothing to adopt")
    if report.is_ours:
        return AdoptResult(report.table, _rows_per_file(con, dataset, colour.main_table), ())
    conversions = plan_conversions(report, expected_shape(colour))
    _refuse_rows_without_id_or_filename(con, dataset, colour.main_table, report.table)
    before = _rows_per_file(con, dataset, colour.main_table)
    by_month = _files_by_month(before, report.table)
    replaced = _month_named_tables(con, dataset, colour, by_month, report.table)
    con.execute("BEGIN TRANSACTION")
    try:
        _rebuild_as_month_tables(con, dataset, colour, conversions, by_month, list(replaced))
        after = _rows_per_file(con, dataset, colour.main_table)
        if after != before:
            raise AdoptError(f"{report.table}: the converted rows per file {after} differ from {before}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    changes = [c.describe() for c in conversions]
    changes.append(f"one table per month ({len(by_month)}) under the view {report.table}")
    changes += [f"{dataset}.{name} ({rows:,} rows) replaced by the main table's rows of its month"
                for name, rows in replaced.items()]
    return AdoptResult(report.table, after, tuple(filter(None, changes)))


def _files_by_month(files: tuple[tuple[str, int], ...], shown: str) -> dict[dt.date, tuple[str, ...]]:
    by_month: dict[dt.date, list[str]] = {}
    for file_name, _ in files:
        found = _FILE_MONTH.search(file_name)
        try:
            month = dt.date.fromisoformat(f"{found[1]}-01") if found else None
        except ValueError:
            month = None
        if month is None:
            raise AdoptError(f"{shown}: cannot tell the month of filename {file_name!r} (expected "
                             "<colour>_tripdata_YYYY-MM.csv or .parquet); fix those rows, then adopt again")
        by_month.setdefault(month, []).append(file_name)
    return {month: tuple(names) for month, names in sorted(by_month.items())}


def _month_named_tables(con: duckdb.DuckDBPyConnection, dataset: str, colour: Colour,
                        by_month: dict[dt.date, tuple[str, ...]], shown: str) -> dict[str, int]:
    """The tables named like month tables, with their rows: the staging copies the converted
    table's tool kept (the course's Kestra flow, this project's earlier layout), or the month
    tables of a view whose rows are converted. Adopt replaces them with the main table's rows; one
    that holds a month the main table does not have is refused, as its rows would be lost."""
    params = {"dataset": dataset, "pattern": f"{colour.month_table_pattern}(__next)?"}
    names = [name for (name,) in con.execute(sql.month_tables(), params).fetchall()]
    found = {name: count_rows(con, dataset, name) for name in names}
    kept = {colour.month_table(month) for month in by_month}
    alone = [name for name, rows in found.items() if rows and not name.endswith("__next") and name not in kept]
    if alone:
        raise AdoptError(f"{dataset}.{alone[0]} holds {found[alone[0]]:,} rows of a month {shown} does not have "
                         "(adopt would replace it): load that month or drop the table, then adopt again")
    return found


def _rebuild_as_month_tables(con: duckdb.DuckDBPyConnection, dataset: str, colour: Colour,
                             conversions: list[Conversion], by_month: dict[dt.date, tuple[str, ...]],
                             replaced: list[str]) -> None:
    """Each month's converted rows into a table of its own, built beside the old ones (the main
    table may be a view over them), which then take their place under the main view."""
    select = ", ".join(f"{_converted(c)} AS {q(c.column)}" for c in conversions)
    for month, names in by_month.items():
        building = colour.month_table(month) + ADOPTING_SUFFIX
        con.execute(f"DROP TABLE IF EXISTS {table(dataset, building)}")
        con.execute(f"CREATE TABLE {table(dataset, building)} AS SELECT {select} FROM "
                    f"{table(dataset, colour.main_table)} WHERE {sql.month_filter(len(names))}", sql.month_params(names))
    _drop(con, dataset, [colour.main_table, *replaced])
    for month in by_month:
        con.execute(sql.rename_table(dataset, colour.month_table(month) + ADOPTING_SUFFIX, colour.month_table(month)))
    con.execute(sql.create_main_view(dataset, colour, [colour.month_table(month) for month in by_month]))


def create_table(dataset: str, colour: Colour, name: str) -> str:
    """This project's main-table layout under another name (the warehouse's DDL names the main table)."""
    columns = expected_shape(colour).columns
    required = {"unique_row_id", "filename"}
    spec = ", ".join(f"{q(n)} {kind}{' NOT NULL' if n in required else ''}" for n, kind in columns.items())
    return f"CREATE TABLE {table(dataset, name)} ({spec})"


def _converted(c: Conversion) -> str:
    if c.source is None:
        return f"CAST(NULL AS {c.kind})"
    if c.column == "unique_row_id":
        # Kestra's ids are the 16 bytes of an MD5 (a BLOB); the earlier layout's, its hex digits.
        # This project's are the same 16 bytes as one number (`md5_number`'s reading of them).
        if c.source_kind == "BLOB":
            return id_from_hex_digest(f"hex({q(c.source)})", c.source)
        if c.source_kind == "VARCHAR":
            return id_from_hex_digest(q(c.source), c.source)
        if c.source_kind == ID_TYPE:
            return q(c.source)
        raise AdoptError(f"unique_row_id is {c.source_kind}: adopt converts BLOB or VARCHAR ids only")
    return f"CAST({q(c.source)} AS {c.kind})"


def _rows_per_file(con: duckdb.DuckDBPyConnection, dataset: str, name: str) -> tuple[tuple[str, int], ...]:
    return tuple(con.execute(
        f"SELECT filename, count(*) FROM {table(dataset, name)} GROUP BY ALL ORDER BY filename"
    ).fetchall())


def _refuse_rows_without_id_or_filename(con: duckdb.DuckDBPyConnection, dataset: str, name: str, shown: str):
    [(no_id, no_file)] = con.execute(
        "SELECT count(*) FILTER (WHERE unique_row_id IS NULL), count(*) FILTER (WHERE filename IS NULL) "
        f"FROM {table(dataset, name)}"
    ).fetchall()
    if no_id or no_file:
        raise AdoptError(
            f"{shown} has {no_id:,} rows without unique_row_id and {no_file:,} without filename "
            "(the Kestra flow before its 2024-12 fix made such rows); delete or fix them, then adopt again"
        )
