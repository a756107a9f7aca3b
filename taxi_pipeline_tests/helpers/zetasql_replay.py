"""The BigQuery statements a load sent (as `bq_proxy` recorded them), replayed on ZetaSQL.

The raw table is typed as BigQuery's load job types it: a CSV month with the pipeline's explicit
all-STRING schema (an empty field is NULL: the load's default null marker), a Parquet file by
BigQuery's conversion table (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet#parquet_conversions:
INT32/INT64 -> INT64, DOUBLE -> FLOAT64, UTF8 byte arrays -> STRING, TIMESTAMP MICROS/MILLIS ->
TIMESTAMP). A Parquet column of the null logical type is not in that table; BigQuery loads it as
INT64 (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet#parquet_conversions).

The reference implementation executes queries, not DDL, and its DML entry point takes no MERGE
("Statement kind RESOLVED_MERGE_STMT does not correspond to a DML statement"). So every statement
is analyzed whole (type checked); a CREATE TABLE ... AS executes its query (the statement's own
text, cut at ZetaSQL's parse locations); a MERGE executes its own USING, ON, search conditions and
INSERT values as the two queries MERGE's definition makes of them (a source row no target row
matches is inserted; a target row no source row matches, and that meets its clause's condition,
is deleted: https://cloud.google.com/bigquery/docs/reference/standard-sql/dml-syntax#merge_statement).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from zetasql.api import Parser

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.warehouses.bigquery.sql import TYPES
from taxi_pipeline_tests.helpers.bq_proxy import Recorded
from taxi_pipeline_tests.helpers.zetasql_engine import Table, ZetaSQL

PARTITIONS_VIEW = {  # https://cloud.google.com/bigquery/docs/information-schema-partitions#schema
    "table_catalog": "STRING", "table_schema": "STRING", "table_name": "STRING", "partition_id": "STRING",
    "total_rows": "INT64", "total_logical_bytes": "INT64", "total_billable_bytes": "INT64",
    "last_modified_time": "TIMESTAMP", "storage_tier": "STRING",
}
_MATCHED, _BY_SOURCE, _BY_TARGET = 1, 2, 3  # ASTMergeWhenClause.MatchType


@dataclass(frozen=True)
class Job:
    statement: str
    params: dict[str, tuple[str, object]]


def recorded_jobs(requests: list[Recorded]) -> list[Job]:
    """The query jobs among the requests, in order, with their parameters as Python values."""
    jobs = []
    for r in requests:
        query = ((r.body or {}).get("configuration") or {}).get("query") if r.method == "POST" else None
        if r.path.endswith("/jobs") and query and not r.by_tests:
            jobs.append(Job(query["query"], {p["name"]: _param(p) for p in query.get("queryParameters", [])}))
    return jobs


def _param(p: dict) -> tuple[str, object]:
    kind, text = p["parameterType"]["type"], p["parameterValue"]["value"]
    return kind, dt.date.fromisoformat(text) if kind == "DATE" else text


def raw_from_csv(name: str, colour: Colour, rows: list[list[str]]) -> Table:
    columns = {c.name: "STRING" for c in colour.csv_columns}
    return Table(name, columns, [[v if v != "" else None for v in row] for row in rows])


def _bigquery_type(arrow: pa.DataType) -> str:
    if pa.types.is_integer(arrow) or pa.types.is_null(arrow):
        return "INT64"
    if pa.types.is_floating(arrow):
        return "FLOAT64"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "STRING"
    if pa.types.is_timestamp(arrow) and arrow.unit in ("ms", "us"):
        return "TIMESTAMP"
    raise AssertionError(f"BigQuery's Parquet conversions have no row for {arrow}")


def raw_from_parquet(name: str, path) -> Table:
    table = pq.read_table(path)
    columns = {f.name: _bigquery_type(f.type) for f in table.schema}
    return Table(name, columns, [list(row.values()) for row in table.to_pylist()])


def month_table(name: str, colour: Colour) -> Table:
    """The main or a staging table of the colour, as `sql.create_main_table` defines its columns."""
    return Table(name, {"unique_row_id": "BYTES", "filename": "STRING",
                        **{c.name: TYPES[c.type] for c in colour.columns}, "file_month": "DATE"})


def _text(statement: str, node) -> str:
    where = node.parse_location_range
    return statement.encode()[where.start:where.end].decode()


def ctas_query(engine: ZetaSQL, statement: str) -> str:
    """The query of a CREATE TABLE ... AS, as the statement spells it."""
    return _text(statement, Parser.parse_statement_static(statement, engine.language).query)


@dataclass(frozen=True)
class MergeParts:
    inserted: str  # a query of the rows the MERGE inserts (its INSERT values, in its column order)
    insert_columns: list[str]
    deleted: str  # a query of the target rows it deletes


def merge_parts(engine: ZetaSQL, statement: str) -> MergeParts:
    tree = Parser.parse_statement_static(statement, engine.language)
    target = f"{_text(statement, tree.target_path)} {_text(statement, tree.alias)}"
    using, on = _text(statement, tree.table_expression), _text(statement, tree.merge_condition)
    inserted = deleted = None
    columns: list[str] = []
    for clause in tree.when_clauses.clause_list:
        condition = f" AND ({_text(statement, clause.search_condition)})" if clause.search_condition else ""
        if clause.match_type == _BY_TARGET:
            row = _text(statement, clause.action.insert_row).strip()
            columns = [c.strip(" `") for c in _text(statement, clause.action.insert_column_list).strip("()").split(",")]
            inserted = (f"SELECT {row.removeprefix('(').removesuffix(')')} FROM {using} "
                        f"WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE {on}){condition}")
        elif clause.match_type == _BY_SOURCE and clause.action.action_type is not None and not clause.action.update_item_list:
            alias = _text(statement, tree.alias).split()[-1]
            deleted = f"SELECT {alias}.* FROM {target} WHERE NOT EXISTS (SELECT 1 FROM {using} WHERE {on}){condition}"
        else:
            raise AssertionError(f"no replay for this WHEN clause of the MERGE: {_text(statement, clause)}")
    return MergeParts(inserted or "SELECT 1 FROM UNNEST([]) x", columns, deleted or "SELECT 1 FROM UNNEST([]) x")


class Replay:
    """The recorded jobs of one month's load, in order, on ZetaSQL: each analyzed; the staging
    CREATE TABLE ... AS executed over the raw rows, the MERGE applied to the main table's rows,
    each SELECT executed over the tables as they then are. A statement ZetaSQL refuses raises its
    ServerError, with ZetaSQL's message."""

    def __init__(self, engine: ZetaSQL, colour: Colour, dataset: str, raw: Table):
        self.engine, self.colour, self.dataset = engine, colour, dataset
        self.tables = {raw.name: raw, self.view.name: self.view}
        self.answers: list[tuple[str, list[list]]] = []  # each SELECT's statement and rows

    @property
    def view(self) -> Table:
        return Table(f"{self.dataset}.INFORMATION_SCHEMA.PARTITIONS", PARTITIONS_VIEW)

    def main(self) -> Table:
        return self.tables.setdefault(f"{self.dataset}.{self.colour.main_table}",
                                      month_table(f"{self.dataset}.{self.colour.main_table}", self.colour))

    def run(self, job: Job) -> None:
        kind = type(self.engine.analyze(job.statement, list(self.tables.values()), job.params)).__name__
        if kind == "ResolvedCreateTableStmt":
            self.main()
        elif kind == "ResolvedCreateTableAsSelectStmt":
            name = _text(job.statement, Parser.parse_statement_static(job.statement, self.engine.language).name)
            names, rows = self.engine.query(ctas_query(self.engine, job.statement), list(self.tables.values()), job.params)
            table = month_table(name.strip("`"), self.colour)
            assert names == list(table.columns), names
            table.rows = rows
            self.tables[table.name] = table
        elif kind == "ResolvedMergeStmt":
            inserted, deleted = self.merge_changes(job)
            main = self.main()
            gone = {_key(row) for row in deleted}
            main.rows = [row for row in main.rows if _key(row) not in gone] + inserted
        elif kind == "ResolvedQueryStmt":
            self.answers.append((job.statement, self.engine.query(job.statement, list(self.tables.values()), job.params)[1]))

    def merge_changes(self, job: Job) -> tuple[list[list], list[list]]:
        """The rows the MERGE inserts (in the main table's column order) and deletes, over the
        tables as they are now."""
        parts = merge_parts(self.engine, job.statement)
        tables = list(self.tables.values())
        _, inserted = self.engine.query(parts.inserted, tables, job.params)
        _, deleted = self.engine.query(parts.deleted, tables, job.params)
        order = [parts.insert_columns.index(c) for c in self.main().columns] if inserted else []
        return [[row[i] for i in order] for row in inserted], deleted


def _key(row: list):
    return row[0], row[-1]  # the id, the month
