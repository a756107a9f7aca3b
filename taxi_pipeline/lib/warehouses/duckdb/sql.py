"""Every DuckDB statement of the pipeline. Identifiers are validated and quoted; values are bound.

The layout keeps one copy of each month: a month is staged (parsed, typed, given ids) into its own
table, `<colour>_tripdata_YYYY_MM`, and the main table `<colour>_tripdata` is a view that unions
every month's table. Publishing a month is a rename and a new view, in one transaction.

The row id is defined in `rowid.py`: the MD5 of the file name and the text of every field (empty
for NULL), joined by the unit separator 0x1F, which never appears in the files, kept as the
16-byte number `md5_number` gives (a `UHUGEINT`; `printf('%032x', unique_row_id)` shows it in
hex); identical copies of a row are then numbered apart. A CSV row's text is the file's own; a
Parquet row has none, so its fields are typed first and hashed as their canonical text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from taxi_pipeline.lib.colours import Colour, Column, LogicalType
from taxi_pipeline.lib.identifiers import validate_identifier
from taxi_pipeline.lib.raw_file import FileColumn

TYPES = {
    LogicalType.STRING: "VARCHAR",
    LogicalType.TIMESTAMP: "TIMESTAMP",
    LogicalType.INTEGER: "BIGINT",
    # BigQuery's NUMERIC is DECIMAL(38, 9): same precision, so both targets hold the same values.
    LogicalType.NUMERIC: "DECIMAL(38, 9)",
}
ID_TYPE = "UHUGEINT"


def q(name: str) -> str:
    """A validated, quoted identifier."""
    return '"' + validate_identifier("identifier", name) + '"'


def table(dataset: str, name: str) -> str:
    return f"{q(dataset)}.{q(name)}"


def create_schema(dataset: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {q(dataset)}"


def empty_main_rows(colour: Colour) -> str:
    """No rows, the main table's columns and types: the view's first branch, so that it has its
    shape with no month loaded, and months staged before a column existed get NULL for it."""
    columns = ", ".join(f"CAST(NULL AS {TYPES[c.type]}) AS {q(c.name)}" for c in colour.columns)
    return f"SELECT CAST(NULL AS {ID_TYPE}) AS unique_row_id, CAST(NULL AS VARCHAR) AS filename, {columns} WHERE false"


def create_main_view(dataset: str, colour: Colour, month_tables: list[str]) -> str:
    """The main table: every merged month, by name (a month's columns may be fewer)."""
    parts = [f"SELECT * FROM ({empty_main_rows(colour)})"]
    parts += [f"SELECT * FROM {table(dataset, name)}" for name in month_tables]
    return f"CREATE OR REPLACE VIEW {table(dataset, colour.main_table)} AS " + " UNION ALL BY NAME ".join(parts)


def month_tables() -> str:
    """The month tables of a colour, oldest first. Binds $dataset and $pattern."""
    return (
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = $dataset "
        "AND regexp_full_match(table_name, $pattern) ORDER BY table_name"
    )


def relation_type() -> str:
    """'BASE TABLE', 'VIEW', or no row. Binds $dataset and $name."""
    return (
        "SELECT table_type FROM information_schema.tables WHERE table_schema = $dataset AND table_name = $name"
    )


def read_raw_csv(colour: Colour) -> str:
    """The file as text: every field VARCHAR, strict about field counts. Binds $path."""
    columns = ", ".join(f"'{validate_identifier('column', c.name)}': 'VARCHAR'" for c in colour.csv_columns)
    return (
        "read_csv($path, header = true, auto_detect = false, delim = ',', quote = '\"', "
        f"escape = '\"', strict_mode = true, null_padding = false, columns = {{{columns}}})"
    )


def create_staging_table(dataset: str, colour: Colour, staging: str) -> str:
    """Staging from a CSV = typed columns + first-copy ids of the raw text. Binds $path and
    $filename. Replaced on re-runs. Columns the CSVs never had (the TLC's later ones) are NULL."""
    typed = ", ".join(f"{csv_value(c)} AS {q(c.name)}" for c in colour.columns)
    return (
        f"CREATE OR REPLACE TABLE {table(dataset, staging)} AS "
        f"SELECT {row_id(q(c.name) for c in colour.csv_columns)} AS unique_row_id, "
        f"$filename AS filename, {typed} FROM {read_raw_csv(colour)}"
    )


# What an INTEGER field of a CSV may hold. DuckDB's own cast also takes '1.5' (as 2), '1e3',
# '0x10' and '1_000', silently.
INTEGER_TEXT = "[+-]?[0-9]+"
NOT_AN_INTEGER = "is not a valid INTEGER"  # what the staging statement's error() says (warehouse.py)


def is_integer_text(text: str) -> str:
    return f"regexp_full_match({text}, '{INTEGER_TEXT}')"


def csv_value(column: Column) -> str:
    """A CSV field's text in the column's type (NULL for the TLC's later columns). An INTEGER
    field that is not integer text fails the statement, naming the column and the value; the
    line is found afterwards (`first_bad_value`), as for a value that does not cast at all."""
    target = TYPES[column.type]
    if not column.in_csv:
        return f"CAST(NULL AS {target})"
    name = q(column.name)
    if column.type is not LogicalType.INTEGER:
        return f"CAST({name} AS {target})"
    # `IS NULL OR`: no NULL message reaches error() (DuckDB's error(NULL) returns NULL, not fails).
    message = f"'column {column.name}: ''' || {name} || ''' {NOT_AN_INTEGER}'"
    return f"CASE WHEN {name} IS NULL OR {is_integer_text(name)} THEN CAST({name} AS {target}) ELSE error({message}) END"


def create_staging_from_parquet(
    dataset: str, colour: Colour, staging: str, layout: tuple[FileColumn, ...],
) -> str:
    """Staging from a Parquet file: each column typed from whatever type its era stored it in,
    then the id of the typed values' canonical text. Binds $path and $filename."""
    by_name = {c.name: c for c in layout}
    typed = [f"{typed_value(c, by_name[c.name])} AS {q(c.name)}" for c in colour.columns]
    texts = []
    for i, c in enumerate(colour.columns):
        found = by_name[c.name]
        if c.type is LogicalType.NUMERIC and found.kind == "float":
            # The typed value's canonical text, computed from the file's double (`numeric_text`).
            typed.append(f"{numeric_text(q(found.source))} AS text_{i}")
            texts.append(f"text_{i}")
        else:
            texts.append(canonical_text(c.type, q(c.name)))
    columns = ", ".join(q(c.name) for c in colour.columns)
    return (
        f"CREATE OR REPLACE TABLE {table(dataset, staging)} AS "
        f"SELECT {row_id(texts)} AS unique_row_id, $filename AS filename, "
        f"{columns} FROM (SELECT {', '.join(typed)} FROM read_parquet($path))"
    )


def row_id(texts: Iterable[str]) -> str:
    """The first-copy id of a row: the file name and the texts, NULL as empty. `concat` reads NULL
    as the empty string, which spares a `coalesce` per field (0.6 s of a 7.7M-row month), and
    `md5_number` gives the 16 bytes without spelling them in hex (1.2 s)."""
    return "md5_number(concat($filename" + "".join(f", chr(31), {text}" for text in texts) + "))"


def hex_id(value: str) -> str:
    """An id as its 32 hex digits, as `rowid.hex_id` and BigQuery's `TO_HEX` spell it."""
    return f"printf('%032x', {value})"


def id_from_hex_digest(value: str, where: str) -> str:
    """An MD5 written in hex (the earlier layout's ids, a Kestra BLOB's `hex`) as this layout's id:
    its bytes read least significant first, as `md5_number` reads them (`rowid.from_hex_digest`)."""
    digits = f"lower({value})"
    # The 16 pairs of digits in reverse order: 5x faster than a regex swap (1.8 s vs 9.7 s of 7.7M ids).
    little_endian = "concat(" + ", ".join(f"substr({digits}, {i}, 2)" for i in range(31, 0, -2)) + ")"
    message = f"'{where}: unique_row_id ' || {digits} || ' is not an MD5 in 32 hex digits'"
    return (
        f"CASE WHEN regexp_full_match({digits}, '[0-9a-f]{{32}}') THEN CAST('0x' || {little_endian} AS {ID_TYPE}) "
        f"ELSE error({message}) END"
    )


def typed_value(column: Column, found: FileColumn) -> str:
    """The column's value in its logical type, from the kind of type the file stores it in.

    One representation whatever the era: a code stored as 1.0 becomes 1 (and '1' as text), and a
    double that is not a whole number fails the month rather than being rounded.
    """
    target = TYPES[column.type]
    if found.kind in ("missing", "null"):
        return f"CAST(NULL AS {target})"
    source = q(found.source)
    if found.kind == "float" and column.type in (LogicalType.STRING, LogicalType.INTEGER):
        message = f"'column {validate_identifier('column', found.source)}: ' || CAST({source} AS VARCHAR) || ' is not a whole number'"
        # `IS NULL OR`: no NULL message reaches error() (DuckDB's error(NULL) returns NULL, not fails).
        whole = (f"CASE WHEN {source} IS NULL OR {source} = trunc({source}) THEN CAST({source} AS BIGINT) "
                 f"ELSE error({message}) END")
        return f"CAST({whole} AS {target})"
    return f"CAST({source} AS {target})"


def canonical_text(logical: LogicalType, value: str) -> str:
    """The text a typed value is hashed as; `rowid.canonical_text` is the reference."""
    if logical is LogicalType.STRING:
        return value
    if logical is LogicalType.INTEGER:
        return f"CAST({value} AS VARCHAR)"
    if logical is LogicalType.NUMERIC:
        # DECIMAL(38, 9) prints nine decimals; the canonical text has no trailing zeros.
        text = f"CAST({value} AS VARCHAR)"
        return f"CASE WHEN contains({text}, '.') THEN rtrim(rtrim({text}, '0'), '.') ELSE {text} END"
    return f"strftime({value}, '%Y-%m-%d %H:%M:%S.%f')"


def numeric_text(double: str) -> str:
    """`canonical_text(NUMERIC, CAST(x AS DECIMAL(38, 9)))` of a double x: the same bytes, from
    the double's own text where that is provably the same, which is nearly always.

    For 1e-4 <= |x| <= 1e6, DuckDB writes a double as its shortest round-trip decimal d, in plain
    notation (`12.5`, `12.0`). If d has at most 9 decimals, x * 10^9 is within 0.12 of the
    integer d * 10^9 (x is within half an ulp, 2^-34, of d; the product's rounding adds at most
    1/16), so round(x * 10^9), the unscaled DECIMAL(38, 9) DuckDB stores (`DoubleToDecimalCast`
    in duckdb/src/common/operator/cast_operators.cpp rounds x * 10^s), is d * 10^9: the
    canonical text is d, less a `.0`. Hashing the ten money columns of a 3.5M-row month took
    10.4 s the general way (6.6 s of it the two trims), 0.65 s as the doubles' own text, and this
    about half the general way's CPU (benchmarks/README.md). Other values (more decimals, tiny or
    huge) take the general way. `test_duckdb_values` checks both ways agree on 4M doubles."""
    text = f"CAST({double} AS VARCHAR)"
    whole = f"CASE WHEN {double} = trunc({double}) THEN left({text}, strlen({text}) - 2) ELSE {text} END"
    general = canonical_text(LogicalType.NUMERIC, f"CAST({double} AS DECIMAL(38, 9))")
    return (
        f"CASE WHEN {double} = 0 THEN '0' "
        f"WHEN abs({double}) BETWEEN 1e-4 AND 1e6 AND strlen({text}) - strpos({text}, '.') <= 9 THEN {whole} "
        f"ELSE {general} END"
    )


def number_identical_rows(dataset: str, staging: str) -> str:
    """Gives the 2nd, 3rd, ... copy of an identical row the id H(hex(first id), k).

    Copies share every field, so which physical copy gets which k does not change the month's set
    of ids; only the few duplicated ids are grouped and windowed, not the whole month.
    """
    staged = table(dataset, staging)
    return (
        f"UPDATE {staged} SET unique_row_id = md5_number(concat({hex_id(staged + '.unique_row_id')}, chr(31), copies.k)) "
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


def read_every_column(dataset: str, name: str) -> str:
    """Reads every block of every column (and checks their checksums) for one row of minima."""
    return f"SELECT min(COLUMNS(*)) FROM {table(dataset, name)}"


def count_rows_of_tables(dataset: str, names: list[str]) -> str:
    """Rows of several tables, summed. A base table's count(*) is read from its metadata, while a
    count through the main view scans a column of every month (1.5 s at 92M rows)."""
    return "SELECT 0" + "".join(f" + (SELECT count(*) FROM {table(dataset, name)})" for name in names)


def first_bad_value(colour: Colour) -> str:
    """For an error message: per typed column, the first line whose text does not cast. Binds $path.

    Run with one thread, so row_number() follows the file's order; line 1 is the header.
    """
    checks = ", ".join(
        f"min(line) FILTER (WHERE {q(c.name)} IS NOT NULL AND ({_does_not_cast(c)})) AS {q(c.name)}"
        for c in colour.csv_columns
        if c.type is not LogicalType.STRING
    )
    return f"SELECT {checks} FROM (SELECT row_number() OVER () + 1 AS line, * FROM {read_raw_csv(colour)})"


def _does_not_cast(column: Column) -> str:
    """The text of the column is not a value of its type, as the staging statement reads it."""
    name = q(column.name)
    if column.type is LogicalType.INTEGER:
        return f"NOT {is_integer_text(name)} OR TRY_CAST({name} AS {TYPES[column.type]}) IS NULL"
    return f"TRY_CAST({name} AS {TYPES[column.type]}) IS NULL"


def field_at_line(colour: Colour, column: str) -> str:
    """The raw text of `column` at line $line. Binds $path and $line."""
    return (
        f"SELECT {q(column)} FROM (SELECT row_number() OVER () + 1 AS line, * "
        f"FROM {read_raw_csv(colour)}) WHERE line = $line"
    )


def month_filter(file_names: int) -> str:
    """`filename IN ($month_file_0, ...)`: a month's rows, whichever source's file they came from."""
    return "filename IN (" + ", ".join(f"$month_file_{i}" for i in range(file_names)) + ")"


def month_params(file_names: tuple[str, ...]) -> dict[str, str]:
    return {f"month_file_{i}": name for i, name in enumerate(file_names)}


def count_vanished_ids(dataset: str, month_table: str, staged: str) -> str:
    """Ids of the month table that the newly staged month no longer has."""
    return (
        f"SELECT count(*) FROM {table(dataset, month_table)} p WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table(dataset, staged)} s WHERE s.unique_row_id = p.unique_row_id)"
    )


def month_stats(dataset: str, month_table: str) -> str:
    """Rows and distinct ids of one month: its month table holds the month's rows and nothing else
    (staged from one file, or split off by `adopt`), so the other months are not read."""
    return f"SELECT count(*), count(DISTINCT unique_row_id) FROM {table(dataset, month_table)}"
