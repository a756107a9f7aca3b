"""Operators' work on BigQuery, which the pipeline itself never does: read the main table's shape,
count, list and drop tables, adopt a main table of another shape.

Identifiers are validated and quoted; no statement here takes a value. BigQuery cannot change a
table's partitioning in place, so `adopt` builds the new table beside the old one and swaps names.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from taxi_pipeline.lib.colours import Colour, Column
from taxi_pipeline.lib.identifiers import validate_identifier
from taxi_pipeline.lib.warehouses.bigquery.dataset import check_dataset
from taxi_pipeline.lib.warehouses.bigquery.sql import (
    ID_TYPE,
    TYPES,
    checked_id_from_hex_digest,
    clustering,
    id_from_hex_digest,
    q,
    validate_project,
)
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

PARTITIONING = "DAY(file_month)"
ADOPTING_SUFFIX = "__adopting"
BACKUP_SUFFIX = "__backup"
# The REST API reports legacy type names; the SQL names are what a user reads in the DDL.
_API_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}
# The month of a Kestra `filename` such as `green_tripdata_2020-04.csv`.
_FILE_MONTH = r"PARSE_DATE('%Y-%m', REGEXP_EXTRACT(`filename`, r'(\d{4}-\d{2})'))"


@dataclass(frozen=True)
class Dataset:
    client: bigquery.Client
    project: str
    name: str

    def __post_init__(self) -> None:
        validate_project(self.project)
        validate_identifier("dataset", self.name)

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self.name}.{validate_identifier('table', table)}"

    def sql(self, table: str) -> str:
        return f"`{self.table_id(table)}`"

    def query(self, statement: str) -> list[tuple]:
        return [tuple(row.values()) for row in self.client.query(statement).result()]

    def tables(self) -> dict[str, str]:
        """Table name -> 'table' or 'view'; none if the dataset does not exist."""
        try:
            found = sorted(self.client.list_tables(f"{self.project}.{self.name}"), key=lambda t: t.table_id)
        except google_errors.NotFound:
            return {}
        return {t.table_id: "view" if t.table_type == "VIEW" else "table" for t in found}


def expected_shape(colour: Colour) -> Shape:
    columns = expected_columns(colour, TYPES, ID_TYPE, trailing={"file_month": "DATE"})
    return Shape(columns, PARTITIONING, clustering(colour))


def live_shape(table: bigquery.Table) -> Shape:
    columns = {}
    for f in table.schema:
        kind = _API_TYPES.get(f.field_type, f.field_type)
        if f.precision is not None:  # NUMERIC(10, 2) holds other values than NUMERIC
            kind += f"({f.precision}, {f.scale or 0})"
        columns[f.name] = f"ARRAY<{kind}>" if f.mode == "REPEATED" else kind
    partitioning = None
    if table.time_partitioning is not None:
        partitioning = f"{table.time_partitioning.type_}({table.time_partitioning.field or '_PARTITIONTIME'})"
    elif table.range_partitioning is not None:
        partitioning = f"RANGE_BUCKET({table.range_partitioning.field})"
    return Shape(columns, partitioning, tuple(table.clustering_fields or ()))


def main_table_report(
    client: bigquery.Client, project: str, dataset: str, colour: Colour,
) -> ShapeReport | None:
    """The live main table against this project's shape; None if there is no such table."""
    return table_report(Dataset(client, project, dataset), colour, colour.main_table)


def check_main_table(client: bigquery.Client, dataset: str, colour: Colour, *,
                     project: str | None = None) -> tuple[Column, ...]:
    """Raises `ForeignTableError` if the colour's main table exists and is not this project's;
    returns the TLC-added columns it lacks. A table that does not exist yet passes."""
    report = require_ours(colour, main_table_report(client, project or client.project, dataset, colour))
    return () if report is None else report.to_add


def table_report(ds: Dataset, colour: Colour, table: str) -> ShapeReport | None:
    try:
        live = live_shape(ds.client.get_table(ds.table_id(table)))
    except google_errors.NotFound:
        return None
    return compare(ds.table_id(table), colour, live, expected_shape(colour), partitioning=True)


def table_size(ds: Dataset, table: str) -> tuple[int, int]:
    """Rows and bytes, from the table's metadata (no query, no cost)."""
    found = ds.client.get_table(ds.table_id(table))
    return found.num_rows or 0, found.num_bytes or 0


def file_counts(ds: Dataset, table: str) -> list[tuple[str, int, int]]:
    """Rows and distinct ids per `filename`: what `counts` prints."""
    return ds.query(f"SELECT filename, COUNT(*), COUNT(DISTINCT unique_row_id) FROM {ds.sql(table)} "
                    "GROUP BY filename ORDER BY filename")


def drop_tables(ds: Dataset, tables: list[str]) -> None:
    for table in tables:
        ds.client.delete_table(ds.table_id(table), not_found_ok=True)


def adopt(ds: Dataset, colour: Colour, *, keep_backup: bool = False) -> AdoptResult:
    """Rebuilds the colour's main table in this project's layout beside it, keeping every row, then
    swaps the names; the old table is kept as `<table>__backup` until the new one is verified."""
    main, adopting, backup = (colour.main_table + suffix for suffix in ("", ADOPTING_SUFFIX, BACKUP_SUFFIX))
    report = table_report(ds, colour, main)
    if report is None:
        raise AdoptError(f"there is no table {ds.table_id(main)}: nothing to adopt")
    if report.is_ours:
        return AdoptResult(report.table, _rows_per_file(ds, main), ())
    if backup in ds.tables():
        raise AdoptError(f"{ds.table_id(backup)} exists: an earlier adopt kept the table it replaced there. "
                         "Check it, then drop it (or rename it back), and adopt again")
    conversions = plan_conversions(report, expected_shape(colour), derived=("file_month",))
    # A renamed table keeps its creation time, so a default expiration could delete it at once
    # (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language#alter_table_rename_to_statement).
    check_dataset(ds.client.get_dataset(f"{ds.project}.{ds.name}"), None)
    _refuse_unusable_rows(ds, main, report.table)
    before = _rows_per_file(ds, main)
    ds.client.delete_table(ds.table_id(adopting), not_found_ok=True)  # an earlier attempt's
    # Kestra's BYTES are the MD5 in its own byte order; a BYTES id of a table with `file_month`
    # is this project's already (only the table's layout differs) and is kept as it is.
    kestra = report.looks_like_kestra
    ds.query(create_converted(ds, colour, main, adopting, conversions, kestra_ids=kestra))
    _verify(ds, colour, adopting, before, kept=None)
    _swap(ds, main, adopting, backup)
    _verify(ds, colour, main, before, kept=ds.table_id(backup))
    if not keep_backup:
        ds.client.delete_table(ds.table_id(backup))
    changes = [c.describe() for c in conversions]
    if kestra:
        changes.insert(0, "unique_row_id: Kestra's MD5 (BYTES), its bytes put in this project's order")
    if "file_month" not in {name.lower() for name in report.live.columns}:
        changes.append(f"file_month: added, derived from filename; partitioned by {PARTITIONING}, "
                       f"clustered by {', '.join(clustering(colour))}")
    return AdoptResult(report.table, before, tuple(filter(None, changes)),
                       ds.table_id(backup) if keep_backup else None)


def create_converted(
    ds: Dataset, colour: Colour, source: str, target: str, conversions: list[Conversion], *, kestra_ids: bool,
) -> str:
    """CREATE TABLE ... AS SELECT in this project's layout (NOT NULL ids, file_month partitions)."""
    required = {"unique_row_id", "filename", "file_month"}
    spec = ", ".join(f"{q(name)} {kind}{' NOT NULL' if name in required else ''}"
                     for name, kind in expected_shape(colour).columns.items())
    values = ", ".join(f"{_converted(c, kestra_ids)} AS {q(c.column)}" for c in conversions)
    return (
        f"CREATE TABLE {ds.sql(target)} ({spec}) PARTITION BY file_month "
        f"CLUSTER BY {', '.join(q(c) for c in clustering(colour))} "
        f"AS SELECT {values}, {_FILE_MONTH} AS file_month FROM {ds.sql(source)}"
    )


def _converted(c: Conversion, kestra_ids: bool) -> str:
    if c.source is None:
        return f"CAST(NULL AS {c.kind})"
    if c.column == "unique_row_id":
        # Kestra's ids are the 16 bytes of an MD5, the earlier layout's its hex digits; this
        # project's are the same 16 bytes, least significant first (see `bigquery.sql.row_id`).
        if c.source_kind == "BYTES":
            return id_from_hex_digest(f"TO_HEX({q(c.source)})") if kestra_ids else q(c.source)
        if c.source_kind == "STRING":
            return checked_id_from_hex_digest(q(c.source))
        raise AdoptError(f"unique_row_id is {c.source_kind}: adopt converts BYTES or STRING ids only")
    if c.source_kind == c.kind:
        return q(c.source)
    return f"CAST({q(c.source)} AS {c.kind})"


def _swap(ds: Dataset, main: str, adopting: str, backup: str) -> None:
    """Two renames; if the second fails, the first is undone, so the main table is never missing
    for longer than a rename (stop the colour's runs while adopting)."""
    ds.query(f"ALTER TABLE {ds.sql(main)} RENAME TO {q(backup)}")
    try:
        ds.query(f"ALTER TABLE {ds.sql(adopting)} RENAME TO {q(main)}")
    except google_errors.GoogleAPIError:
        ds.query(f"ALTER TABLE {ds.sql(backup)} RENAME TO {q(main)}")
        raise


def _verify(ds: Dataset, colour: Colour, table: str, before, kept: str | None) -> None:
    """Same rows per file, and this project's layout; else the new table goes and the old one stays."""
    report = table_report(ds, colour, table)
    after = _rows_per_file(ds, table)
    if after == before and report is not None and report.is_ours:
        return
    if after != before:
        problem = f"rows per file {after} instead of {before}"
    else:
        problem = "; ".join(report.differences) if report else "it is missing"
    if kept is None:
        ds.client.delete_table(ds.table_id(table), not_found_ok=True)
        raise AdoptError(f"the converted table came out wrong ({problem}); nothing was changed")
    raise AdoptError(f"{ds.table_id(table)} came out wrong ({problem}); the table as it was is {kept}")


def _rows_per_file(ds: Dataset, table: str) -> tuple[tuple[str, int], ...]:
    rows = ds.query(f"SELECT filename, COUNT(*) FROM {ds.sql(table)} GROUP BY filename ORDER BY filename")
    return tuple((filename, count) for filename, count in rows)


def _refuse_unusable_rows(ds: Dataset, table: str, shown: str) -> None:
    [(no_id, no_month)] = ds.query(
        f"SELECT COUNTIF(unique_row_id IS NULL), COUNTIF(filename IS NULL OR {_FILE_MONTH} IS NULL) "
        f"FROM {ds.sql(table)}"
    )
    if no_id or no_month:
        raise AdoptError(
            f"{shown} has {no_id:,} rows without unique_row_id and {no_month:,} whose filename names no "
            "month (YYYY-MM); delete or fix them, then adopt again"
        )
