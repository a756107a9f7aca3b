"""Every BigQuery statement of the pipeline. Identifiers are validated, values are query parameters.

The row id follows `rowid.py` exactly: a CSV month is loaded as all-STRING columns and hashed as
the file's raw text; a Parquet month is loaded in the file's own types, typed, and hashed as the
canonical text of its typed values. It is kept in 16 BYTES, as the course's table keeps its MD5,
and `TO_HEX(unique_row_id)` is what DuckDB's `printf('%032x', unique_row_id)` shows for the same
file.
"""

from __future__ import annotations

import re

from taxi_pipeline.lib.colours import Colour, Column, LogicalType
from taxi_pipeline.lib.identifiers import validate_identifier
from taxi_pipeline.lib.raw_file import FileColumn

TYPES = {
    LogicalType.STRING: "STRING",
    LogicalType.TIMESTAMP: "TIMESTAMP",
    LogicalType.INTEGER: "INT64",
    LogicalType.NUMERIC: "NUMERIC",
}
_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,61}[a-z0-9]")
SEP = "'\\x1f'"  # the unit separator, as a BigQuery string literal
ID_TYPE = "BYTES"


def validate_project(project: str) -> str:
    if not isinstance(project, str) or not _PROJECT.fullmatch(project):
        raise ValueError(f"invalid project {project!r}: expected a GCP project id like 'my-project-123'")
    return project


def table_id(project: str, dataset: str, name: str) -> str:
    """`project.dataset.table` for the client API."""
    return f"{validate_project(project)}.{validate_identifier('dataset', dataset)}.{validate_identifier('table', name)}"


def table(project: str, dataset: str, name: str) -> str:
    """The same, quoted for SQL."""
    return f"`{table_id(project, dataset, name)}`"


def q(name: str) -> str:
    """A validated, quoted column name."""
    return f"`{validate_identifier('column', name)}`"


def clustering(colour: Colour) -> tuple[str, ...]:
    """What the main table is clustered by, within each month's partition: the pickup time and
    zone, which analysts filter on. Not the id: BigQuery clusters only on BIGNUMERIC, BOOL, DATE,
    DATETIME, GEOGRAPHY, INT64, NUMERIC, RANGE, STRING and TIMESTAMP columns, at most four
    (https://cloud.google.com/bigquery/docs/creating-clustered-tables#clustered_column_requirements),
    so a BYTES id is refused; and the merge reads all of a month's ids anyway (a hash join), so
    an id order would not prune it."""
    return (colour.pickup_column, "PULocationID")


def create_main_table(project: str, dataset: str, colour: Colour) -> str:
    """Partitioned by the file's month, so a month's merge reads and rewrites one partition."""
    columns = ", ".join(f"{q(c.name)} {TYPES[c.type]}" for c in colour.columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {table(project, dataset, colour.main_table)} "
        f"(unique_row_id {ID_TYPE} NOT NULL, filename STRING NOT NULL, {columns}, file_month DATE NOT NULL) "
        f"PARTITION BY file_month CLUSTER BY {', '.join(q(c) for c in clustering(colour))}"
    )


def add_column(project: str, dataset: str, colour: Colour, column: Column) -> str:
    """A column the TLC added later, added in place to a table made before it was known."""
    return (
        f"ALTER TABLE {table(project, dataset, colour.main_table)} "
        f"ADD COLUMN IF NOT EXISTS {q(column.name)} {TYPES[column.type]}"
    )


def create_staging_table(project: str, dataset: str, colour: Colour, staging: str, raw: str) -> str:
    """Typed staging table with ids, from the all-STRING load of a CSV: ids of the raw text, then
    the types. Binds @filename and @file_month. Columns the CSVs never had are NULL."""
    raw_text = ", ".join(f"IFNULL({q(c.name)}, '')" for c in colour.csv_columns)
    typed = ", ".join(f"{csv_value(c)} AS {q(c.name)}" for c in colour.columns)
    return _numbered_staging(project, dataset, staging, f"SELECT * FROM {table(project, dataset, raw)}", raw_text, typed)


# What an INTEGER field of a CSV may hold, as on DuckDB (`duckdb.sql.INTEGER_TEXT`). BigQuery's
# own cast also takes hex text ('0x1F' is 31: https://cloud.google.com/bigquery/docs/reference/standard-sql/conversion_functions#cast_as_int64),
# which no release file has; one rule on both targets keeps them agreeing about a month.
INTEGER_TEXT = r"r'^[+-]?[0-9]+$'"


def csv_value(column: Column) -> str:
    """A CSV field's text in the column's type; an INTEGER field that is not integer text fails the
    statement (the warehouse then finds the value with `first_bad_value`)."""
    if not column.in_csv:
        return f"CAST(NULL AS {TYPES[column.type]})"
    name = q(column.name)
    if column.type is not LogicalType.INTEGER:
        return f"CAST({name} AS {TYPES[column.type]})"
    # ERROR's message is never NULL here: the field is not NULL in that branch.
    message = f"CONCAT('column {column.name}: ', {name}, ' is not a valid INTEGER')"
    return f"CAST(IF({name} IS NULL OR REGEXP_CONTAINS({name}, {INTEGER_TEXT}), {name}, ERROR({message})) AS INT64)"


def create_staging_from_parquet(
    project: str, dataset: str, colour: Colour, staging: str, raw: str, layout: tuple[FileColumn, ...],
) -> str:
    """Typed staging table with ids, from the load of a Parquet file in its own types: the types
    first, then ids of the typed values' canonical text. Binds @filename and @file_month."""
    by_name = {c.name: c for c in layout}
    typed = ", ".join(f"{typed_value(c, by_name[c.name])} AS {q(c.name)}" for c in colour.columns)
    text = ", ".join(f"IFNULL({canonical_text(c.type, q(c.name))}, '')" for c in colour.columns)
    columns = ", ".join(q(c.name) for c in colour.columns)
    return _numbered_staging(project, dataset, staging, f"SELECT {typed} FROM {table(project, dataset, raw)}", text, columns)


def _numbered_staging(project: str, dataset: str, staging: str, rows: str, hashed_text: str, columns: str) -> str:
    """`rows` with first-copy ids of `hashed_text`, the k-th identical copy numbered, then `columns`."""
    return (
        f"CREATE OR REPLACE TABLE {table(project, dataset, staging)} AS "
        f"WITH source AS ({rows}), "
        f"hashed AS (SELECT {row_id(f'ARRAY_TO_STRING([@filename, {hashed_text}], {SEP})')} AS first_id, * "
        "FROM source), "
        "numbered AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY first_id) AS k FROM hashed) "
        f"SELECT IF(k = 1, first_id, {row_id(f'CONCAT(TO_HEX(first_id), {SEP}, CAST(k AS STRING))')}) AS unique_row_id, "
        f"@filename AS filename, {columns}, @file_month AS file_month FROM numbered"
    )


def row_id(text: str) -> str:
    """The id of a text: its MD5 as DuckDB's `md5_number` reads it (least significant byte first),
    written most significant byte first, so that `TO_HEX` spells the number as DuckDB does."""
    return id_from_hex_digest(f"TO_HEX(MD5({text}))")


def id_from_hex_digest(digits: str) -> str:
    """An MD5 in 32 hex digits as this layout's id: the digest's bytes in reverse order. Reversed
    in hex, not with REVERSE(BYTES) as plain BigQuery could: the emulator the tests run against
    (local-bigquery) reverses the bytes' escaped text instead and fails."""
    return f"FROM_HEX(REGEXP_REPLACE(REVERSE(LOWER({digits})), r'(.)(.)', r'\\2\\1'))"


def checked_id_from_hex_digest(digits: str) -> str:
    """As `id_from_hex_digest`, failing on text that is not 32 hex digits (FROM_HEX would make a
    shorter id of it): for ids read from a table, not made here."""
    message = f"CONCAT('unique_row_id ', IFNULL({digits}, 'NULL'), ' is not an MD5 in 32 hex digits')"
    return (
        f"IF(REGEXP_CONTAINS(LOWER({digits}), r'^[0-9a-f]{{32}}$'), {id_from_hex_digest(digits)}, ERROR({message}))"
    )


def typed_value(column: Column, found: FileColumn) -> str:
    """As `duckdb.sql.typed_value`: one representation whatever type the file's era used."""
    target = TYPES[column.type]
    if found.kind in ("missing", "null"):
        return f"CAST(NULL AS {target})"
    source = q(found.source)
    if found.kind == "float" and column.type in (LogicalType.STRING, LogicalType.INTEGER):
        # A NULL must pass: IF evaluates its ELSE branch when the condition is NULL
        # (https://cloud.google.com/bigquery/docs/reference/standard-sql/conditional_expressions#if),
        # and ERROR(NULL) raises "ERROR function called with NULL value" (ZetaSQL's reference engine).
        message = f"CONCAT('column {found.source}: ', CAST({source} AS STRING), ' is not a whole number')"
        return (f"CAST(IF({source} IS NULL OR {source} = TRUNC({source}), CAST({source} AS INT64), "
                f"ERROR({message})) AS {target})")
    return f"CAST({source} AS {target})"


def canonical_text(logical: LogicalType, value: str) -> str:
    """As `duckdb.sql.canonical_text`; `rowid.canonical_text` is the reference."""
    if logical is LogicalType.STRING:
        return value
    if logical is LogicalType.INTEGER:
        return f"CAST({value} AS STRING)"
    if logical is LogicalType.NUMERIC:
        text = f"CAST({value} AS STRING)"
        return f"IF(STRPOS({text}, '.') > 0, RTRIM(RTRIM({text}, '0'), '.'), {text})"
    return f"FORMAT_TIMESTAMP('%Y-%m-%d %H:%M:%E6S', {value}, 'UTC')"


def first_bad_value(project: str, dataset: str, colour: Colour, raw: str) -> str:
    """For an error message: one value per typed column that does not cast (the load keeps no
    line numbers, so the row's fields identify it)."""
    checks = " UNION ALL ".join(
        f"(SELECT '{c.name}' AS column_name, '{c.type.value}' AS expected, {q(c.name)} AS value "
        f"FROM {table(project, dataset, raw)} WHERE {q(c.name)} IS NOT NULL AND ({_not_castable(c)}) LIMIT 1)"
        for c in colour.csv_columns if c.type is not LogicalType.STRING
    )
    return f"SELECT * FROM ({checks}) LIMIT 1"


def _not_castable(column: Column) -> str:
    name = q(column.name)
    refused = f"SAFE_CAST({name} AS {TYPES[column.type]}) IS NULL"
    if column.type is LogicalType.INTEGER:
        return f"NOT REGEXP_CONTAINS({name}, {INTEGER_TEXT}) OR {refused}"
    return refused


def merge_month(project: str, dataset: str, colour: Colour, staging: str) -> str:
    """Kestra's MERGE, corrected and pruned: inserts the staged rows whose ids the month lacks and
    deletes the month's rows whose ids the staged file lacks (rows that left it, or another
    source's file of the month). Binds @file_month.

    `ON FALSE`, with the month's filter in the DELETE clause: with both NOT MATCHED BY TARGET and
    NOT MATCHED BY SOURCE and any other ON condition BigQuery "usually performs a full outer join,
    which cannot be pruned", reading the id column of every month on every merge; "if the merge
    condition uses a constant false predicate, then BigQuery can use the filter condition for
    partition pruning" (https://cloud.google.com/bigquery/docs/using-dml-with-partitioned-tables#pruning_partitions_when_using_a_merge_statement).
    The ids to insert and to keep are found by uncorrelated subqueries, each filtered on the month
    (a query parameter is a constant for pruning: https://cloud.google.com/bigquery/docs/querying-partitioned-tables#use_a_constant_filter_expression)."""
    main, staged = table(project, dataset, colour.main_table), table(project, dataset, staging)
    columns = ["unique_row_id", "filename", *(c.name for c in colour.columns), "file_month"]
    names = ", ".join(q(c) for c in columns)
    values = ", ".join(f"S.{q(c)}" for c in columns)
    month_ids = f"SELECT unique_row_id FROM {main} WHERE file_month = @file_month"
    return (
        f"MERGE {main} T USING (SELECT * FROM {staged} WHERE unique_row_id NOT IN ({month_ids})) S ON FALSE "
        f"WHEN NOT MATCHED BY TARGET THEN INSERT ({names}) VALUES ({values}) "
        "WHEN NOT MATCHED BY SOURCE AND T.file_month = @file_month "
        f"AND T.unique_row_id NOT IN (SELECT unique_row_id FROM {staged}) THEN DELETE"
    )


def month_stats(project: str, dataset: str, colour: Colour) -> str:
    """Rows and distinct ids of one month (one partition's id column). Binds @file_month."""
    return (
        f"SELECT COUNT(*), COUNT(DISTINCT unique_row_id) FROM {table(project, dataset, colour.main_table)} "
        "WHERE file_month = @file_month"
    )


def partition_rows(project: str, dataset: str) -> str:
    """Rows per partition of one table, from metadata: no table data is read (billed as a
    metadata query, 10 MB at most: https://cloud.google.com/bigquery/docs/information-schema-partitions).
    Binds @table_name. A daily partition's id is its date, YYYYMMDD; `__NULL__` and
    `__UNPARTITIONED__` (rows still in a streaming buffer) name no month."""
    schema = f"`{validate_project(project)}.{validate_identifier('dataset', dataset)}.INFORMATION_SCHEMA.PARTITIONS`"
    return (
        f"SELECT partition_id, total_rows FROM {schema} "
        "WHERE table_name = @table_name AND REGEXP_CONTAINS(partition_id, r'^[0-9]{8}$') ORDER BY partition_id"
    )
