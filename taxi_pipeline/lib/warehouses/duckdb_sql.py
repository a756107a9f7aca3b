"""Every DuckDB statement of the pipeline. Identifiers are validated and quoted; values are bound.

The row id is defined in `rowid.py`: the hex MD5 of the file name and the raw text of every field
(empty for NULL), joined by the unit separator 0x1F, which never appears in the CSVs; identical
copies of a row are then numbered apart.
"""

from __future__ import annotations

import re

from taxi_pipeline.lib.colours import Colour, LogicalType
from taxi_pipeline.lib.identifiers import validate_identifier

TYPES = {
    LogicalType.STRING: "VARCHAR",
    LogicalType.TIMESTAMP: "TIMESTAMP",
    LogicalType.INTEGER: "BIGINT",
    # BigQuery's NUMERIC is DECIMAL(38, 9): same precision, so both targets hold the same values.
    LogicalType.NUMERIC: "DECIMAL(38, 9)",
}


def q(name: str) -> str:
    """A validated, quoted identifier."""
    return '"' + validate_identifier("identifier", name) + '"'


def table(dataset: str, name: str) -> str:
    return f"{q(dataset)}.{q(name)}"


def create_schema(dataset: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {q(dataset)}"


def create_main_table(dataset: str, colour: Colour) -> str:
    columns = ", ".join(f"{q(c.name)} {TYPES[c.type]}" for c in colour.columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {table(dataset, colour.main_table)} "
        f"(unique_row_id VARCHAR NOT NULL, filename VARCHAR NOT NULL, {columns})"
    )


def read_raw_csv(colour: Colour) -> str:
    """The file as text: every field VARCHAR, strict about field counts. Binds $path."""
    columns = ", ".join(f"'{validate_identifier('column', c.name)}': 'VARCHAR'" for c in colour.columns)
    return (
        "read_csv($path, header = true, auto_detect = false, delim = ',', quote = '\"', "
        f"escape = '\"', strict_mode = true, null_padding = false, columns = {{{columns}}})"
    )


def create_staging_table(dataset: str, colour: Colour, staging: str) -> str:
    """Staging = typed columns + first-copy ids. Binds $path and $filename. Replaced on re-runs."""
    raw_text = ", ".join(f"coalesce({q(c.name)}, '')" for c in colour.columns)
    typed = ", ".join(f"CAST({q(c.name)} AS {TYPES[c.type]}) AS {q(c.name)}" for c in colour.columns)
    return (
        f"CREATE OR REPLACE TABLE {table(dataset, staging)} AS "
        f"SELECT md5(concat_ws(chr(31), $filename, {raw_text})) AS unique_row_id, "
        f"$filename AS filename, {typed} FROM {read_raw_csv(colour)}"
    )


def number_identical_rows(dataset: str, staging: str) -> str:
    """Gives the 2nd, 3rd, ... copy of an identical row the id md5(first id, k).

    Copies share every field, so which physical copy gets which k does not change the month's set
    of ids; only the few duplicated ids are grouped and windowed, not the whole month.
    """
    staged = table(dataset, staging)
    return (
        f"UPDATE {staged} SET unique_row_id = md5(concat_ws(chr(31), {staged}.unique_row_id, copies.k::VARCHAR)) "
        f"FROM (SELECT rowid AS row, row_number() OVER (PARTITION BY unique_row_id) AS k FROM {staged} "
        f"WHERE unique_row_id IN (SELECT unique_row_id FROM {staged} GROUP BY ALL HAVING count(*) > 1)) copies "
        f"WHERE {staged}.rowid = copies.row AND copies.k > 1"
    )


def comment_on_table(dataset: str, name: str, fingerprint: str) -> str:
    """Records what a staging table was built from. DuckDB cannot bind a comment, so it must be hex."""
    if not re.fullmatch(r"[0-9a-f]{32}", fingerprint):
        raise ValueError(f"a table fingerprint is 32 hex digits, got {fingerprint!r}")
    return f"COMMENT ON TABLE {table(dataset, name)} IS '{fingerprint}'"


def table_comment() -> str:
    """The comment of a table. Binds $dataset and $name."""
    return "SELECT comment FROM duckdb_tables() WHERE schema_name = $dataset AND table_name = $name"


def drop_table(dataset: str, name: str) -> str:
    return f"DROP TABLE IF EXISTS {table(dataset, name)}"


def rename_table(dataset: str, name: str, new_name: str) -> str:
    return f"ALTER TABLE {table(dataset, name)} RENAME TO {q(new_name)}"


def count_rows(dataset: str, name: str) -> str:
    return f"SELECT count(*) FROM {table(dataset, name)}"


def first_bad_value(colour: Colour) -> str:
    """For an error message: per typed column, the first line whose text does not cast. Binds $path.

    Run with one thread, so row_number() follows the file's order; line 1 is the header.
    """
    checks = ", ".join(
        f"min(line) FILTER (WHERE {q(c.name)} IS NOT NULL "
        f"AND TRY_CAST({q(c.name)} AS {TYPES[c.type]}) IS NULL) AS {q(c.name)}"
        for c in colour.columns
        if c.type is not LogicalType.STRING
    )
    return f"SELECT {checks} FROM (SELECT row_number() OVER () + 1 AS line, * FROM {read_raw_csv(colour)})"


def field_at_line(colour: Colour, column: str) -> str:
    """The raw text of `column` at line $line. Binds $path and $line."""
    return (
        f"SELECT {q(column)} FROM (SELECT row_number() OVER () + 1 AS line, * "
        f"FROM {read_raw_csv(colour)}) WHERE line = $line"
    )


def delete_vanished_rows(dataset: str, colour: Colour, staging: str) -> str:
    """Rows of this file that are no longer in it. Binds $filename; touches only that file's rows."""
    main = table(dataset, colour.main_table)
    return (
        f"DELETE FROM {main} WHERE filename = $filename AND NOT EXISTS "
        f"(SELECT 1 FROM {table(dataset, staging)} s WHERE s.unique_row_id = {main}.unique_row_id)"
    )


def insert_new_rows(dataset: str, colour: Colour, staging: str) -> str:
    """Staging rows whose id the main table lacks. Binds $filename (ids embed the file name)."""
    main = table(dataset, colour.main_table)
    return (
        f"INSERT INTO {main} BY NAME SELECT s.* FROM {table(dataset, staging)} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {main} m "
        "WHERE m.filename = $filename AND m.unique_row_id = s.unique_row_id)"
    )


def insert_all_rows(dataset: str, colour: Colour, staging: str) -> str:
    """Every staging row: the merge of a month the main table does not hold yet."""
    return f"INSERT INTO {table(dataset, colour.main_table)} BY NAME SELECT * FROM {table(dataset, staging)}"


def count_month_rows(dataset: str, colour: Colour) -> str:
    """Rows of one file in the main table. Binds $filename."""
    return f"SELECT count(*) FROM {table(dataset, colour.main_table)} WHERE filename = $filename"


def month_stats(dataset: str, colour: Colour) -> str:
    """Rows and distinct ids of one file in the main table. Binds $filename."""
    return (
        "SELECT count(*), count(DISTINCT unique_row_id) "
        f"FROM {table(dataset, colour.main_table)} WHERE filename = $filename"
    )
