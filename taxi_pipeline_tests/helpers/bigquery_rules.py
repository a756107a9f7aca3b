"""BigQuery's documented rules, held against each statement the pipeline sends (parsed with sqlglot,
BigQuery dialect) and against the sequence of API calls a gcp test recorded (`bq_proxy`).

What no parser can see (an ERROR() reached with a NULL message, a cast BigQuery refuses) is left
to ZetaSQL's execution (`test_zetasql.py`). The emulators enforce none of these rules
(docs/emulators.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from taxi_pipeline.lib.colours import GREEN, YELLOW


@dataclass(frozen=True)
class Rule:
    name: str
    url: str


CLUSTERING = Rule(
    "clustering columns are top-level columns of type BIGNUMERIC, BOOL, DATE, DATETIME, GEOGRAPHY, INT64, "
    "NUMERIC, RANGE, STRING or TIMESTAMP, at most four",
    "https://cloud.google.com/bigquery/docs/creating-clustered-tables#clustered_column_requirements")
PARTITIONING = Rule(
    "a main table is partitioned by a DATE, TIMESTAMP or DATETIME column",
    "https://cloud.google.com/bigquery/docs/partitioned-tables#date_timestamp_partitioned_tables")
PARTITION_FILTER = Rule(
    "a query that reads a main table filters its partition column file_month with a constant expression "
    "(a literal or a query parameter), else it reads every partition",
    "https://cloud.google.com/bigquery/docs/querying-partitioned-tables#use_a_constant_filter_expression")
UNPRUNED_MERGE = Rule(
    "no MERGE with both WHEN NOT MATCHED [BY TARGET] and WHEN NOT MATCHED BY SOURCE and an ON other than "
    "FALSE: BigQuery 'usually performs a full outer join, which cannot be pruned'",
    "https://cloud.google.com/bigquery/docs/using-dml-with-partitioned-tables#pruning_partitions_when_using_a_merge_statement")
WHOLE_TABLE_COUNT = Rule(
    "a whole table's COUNT(*) is its metadata (tables.get numRows, free); a query bills 10 MB at least",
    "https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#Table.FIELDS.num_rows")

CLUSTERABLE = frozenset({"BIGNUMERIC", "BOOL", "DATE", "DATETIME", "GEOGRAPHY", "INT64", "NUMERIC", "RANGE",
                         "STRING", "TIMESTAMP"})
TIME_TYPES = frozenset({"DATE", "TIMESTAMP", "DATETIME"})
MAIN_TABLES = frozenset(c.main_table for c in (GREEN, YELLOW))
PARTITION_COLUMN = "file_month"
# REST type names (schema fields) -> GoogleSQL names
_REST_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


def is_main_table(name: str) -> bool:
    """`<colour>_tripdata`, or adopt's rebuild of one (`__adopting`), which becomes it; not the
    month tables (`_YYYY_MM`), not `__backup`."""
    return name in MAIN_TABLES or name.removesuffix("__adopting") in MAIN_TABLES


@dataclass(frozen=True)
class FullScan:
    """A documented full read of a main table by an operator's command (README: Operating)."""
    name: str

    def matches(self, statement: exp.Expression) -> bool:
        return _FULL_SCANS[self.name](statement)


def _grouped_by_filename(s: exp.Expression) -> bool:
    group = s.args.get("group") if isinstance(s, exp.Select) else None
    return group is not None and [c.sql() for c in group.expressions] == ["filename"] and not s.args.get("where")


def _unusable_rows(s: exp.Expression) -> bool:
    return isinstance(s, exp.Select) and "COUNTIF(unique_row_id IS NULL)" in s.sql(dialect="bigquery")


def _rebuild(s: exp.Expression) -> bool:
    target = s.this.this if isinstance(s, exp.Create) and isinstance(s.this, exp.Schema) else None
    return isinstance(target, exp.Table) and target.name.endswith("__adopting")


_FULL_SCANS = {
    "counts, and adopt before and after: rows per file (admin.file_counts, admin._rows_per_file)": _grouped_by_filename,
    "adopt: rows without an id or a month are refused (admin._refuse_unusable_rows)": _unusable_rows,
    "adopt: the table rebuilt in this project's layout (admin.create_converted)": _rebuild,
}
ALLOWED_FULL_SCANS = tuple(FullScan(name) for name in _FULL_SCANS)


def parse(statement: str) -> exp.Expression:
    return sqlglot.parse_one(statement, dialect="bigquery")


def type_name(kind: exp.DataType) -> str:
    return kind.sql(dialect="bigquery").split("(")[0].upper()


def rest_type(field: dict) -> str:
    kind = field.get("type", "").upper()
    return "ARRAY" if field.get("mode") == "REPEATED" else _REST_TYPES.get(kind, kind)


def clustering_problems(table: str, columns: list[str], types: dict[str, str]) -> list[str]:
    """`columns` against CLUSTERING, `types` the table's column types (GoogleSQL names)."""
    problems = []
    if len(columns) > 4:
        problems.append(f"{table} is clustered by {len(columns)} columns: {', '.join(columns)}")
    for column in columns:
        kind = types.get(column) or types.get(column.lower())
        if kind is not None and kind not in CLUSTERABLE:
            problems.append(f"{table} is clustered by {column}, of type {kind}")
    return problems


def statement_problems(statement: str) -> list[tuple[Rule, str]]:
    """Every rule the statement breaks, each with what breaks it."""
    tree = parse(statement)
    found: list[tuple[Rule, str]] = []
    if isinstance(tree, exp.Create):
        found += _create_problems(tree)
    if isinstance(tree, exp.Merge):
        found += _merge_problems(tree)
    if not any(scan.matches(tree) for scan in ALLOWED_FULL_SCANS):
        for table in _unfiltered_main_reads(tree):
            found.append((PARTITION_FILTER, f"{table} is read without a constant filter on {PARTITION_COLUMN}"))
    if _whole_table_count(tree):
        found.append((WHOLE_TABLE_COUNT, "SELECT COUNT(*) of a whole table"))
    return found


def _create_problems(tree: exp.Create) -> list[tuple[Rule, str]]:
    schema = tree.this if isinstance(tree.this, exp.Schema) else None
    table = schema.this if schema is not None else tree.this
    if not isinstance(table, exp.Table) or tree.args.get("kind", "").upper() != "TABLE":
        return []
    types = {c.name: type_name(c.args["kind"]) for c in (schema.expressions if schema else [])
             if isinstance(c, exp.ColumnDef) and c.args.get("kind")}
    props = tree.args.get("properties")
    cluster = props.find(exp.ClusterProperty) if props else None
    partition = props.find(exp.PartitionedByProperty) if props else None
    found = []
    if cluster is not None:
        columns = [c.name for c in cluster.expressions]
        found += [(CLUSTERING, p) for p in clustering_problems(table.name, columns, types)]
    if is_main_table(table.name):
        column = next(iter(partition.find_all(exp.Column, exp.Identifier)), None) if partition else None
        name = column.name if column is not None else None
        if name is None:
            found.append((PARTITIONING, f"{table.name} is created without PARTITION BY"))
        elif types and types.get(name) not in TIME_TYPES:
            found.append((PARTITIONING, f"{table.name} is partitioned by {name}, of type {types.get(name)}"))
    return found


def _merge_problems(tree: exp.Merge) -> list[tuple[Rule, str]]:
    whens = tree.args["whens"].expressions
    by_target = any(not w.args.get("matched") and not w.args.get("source") for w in whens)
    by_source = [w for w in whens if not w.args.get("matched") and w.args.get("source")]
    on = tree.args.get("on")
    on_false = isinstance(on, exp.Boolean) and on.this is False
    target = tree.this
    found = []
    if by_target and by_source and not on_false:
        found.append((UNPRUNED_MERGE, f"ON {on.sql(dialect='bigquery')}"))
    if is_main_table(target.name):
        alias = target.alias_or_name
        # The target is read where ON can match it and where NOT MATCHED BY SOURCE looks at it.
        filtered = (on_false or _filters_month(on, {alias, target.name})) and all(
            _filters_month(w.args.get("condition"), {alias, target.name}) for w in by_source)
        if not filtered:
            found.append((PARTITION_FILTER, f"MERGE target {target.name} without a constant filter on "
                                            f"{PARTITION_COLUMN} in ON and in every NOT MATCHED BY SOURCE"))
    return found


def _unfiltered_main_reads(tree: exp.Expression) -> list[str]:
    if isinstance(tree, (exp.Alter, exp.Drop)):
        return []  # they read no rows (a RENAME TO names a main table without reading it)
    merge_target = tree.this if isinstance(tree, exp.Merge) else None
    create_target = None
    if isinstance(tree, exp.Create):
        create_target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    unfiltered = []
    for table in tree.find_all(exp.Table):
        if table is merge_target or table is create_target or not is_main_table(table.name):
            continue
        select = table.find_ancestor(exp.Select)
        names = {table.alias_or_name, table.name}
        if select is None or not _filters_month(select.args.get("where"), names):
            unfiltered.append(table.name)
    return unfiltered


def _conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    if condition is None:
        return []
    condition = condition.this if isinstance(condition, exp.Where) else condition
    condition = condition.unnest()
    if isinstance(condition, exp.And):
        return _conjuncts(condition.left) + _conjuncts(condition.right)
    return [condition]


def _constant(node: exp.Expression) -> bool:
    """A literal, a query parameter, or an expression of those only."""
    return not any(isinstance(n, (exp.Column, exp.Subquery, exp.Select)) for n in node.walk())


def _filters_month(condition: exp.Expression | None, names: set[str]) -> bool:
    def on_month(node: exp.Expression) -> bool:
        return isinstance(node, exp.Column) and node.name == PARTITION_COLUMN and node.table in names | {""}

    for c in _conjuncts(condition):
        if isinstance(c, (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            if (on_month(c.left) and _constant(c.right)) or (on_month(c.right) and _constant(c.left)):
                return True
        if isinstance(c, exp.In) and on_month(c.this) and not c.args.get("query") and all(
                _constant(e) for e in c.expressions):
            return True
        if isinstance(c, exp.Between) and on_month(c.this) and _constant(c.args["low"]) and _constant(c.args["high"]):
            return True
    return False


def _whole_table_count(tree: exp.Expression) -> bool:
    if not isinstance(tree, exp.Select) or tree.args.get("where") or tree.args.get("group"):
        return False
    source = tree.args.get("from_") or tree.args.get("from")
    return (isinstance(source, exp.From) and isinstance(source.this, exp.Table) and not tree.args.get("joins")
            and all(isinstance(e, exp.Count) and isinstance(e.this, exp.Star) for e in tree.expressions))


def check_requests(requests) -> list[str]:
    """Every rule the recorded requests break, as one line each: the rule, its URL, the offender."""
    from taxi_pipeline_tests.helpers.request_rules import request_problems

    lines = [f"- {rule.name}\n  ({rule.url})\n  {what}" for rule, what in request_problems(requests)]
    return list(dict.fromkeys(lines))  # a statement sent twice (two months, a retry) is one problem
