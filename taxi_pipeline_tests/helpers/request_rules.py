"""The rules a sequence of recorded API calls must keep: each statement's (`bigquery_rules`), the
table definitions of tables.insert/patch and load jobs, no DDL for what tables.get just showed,
and the IAM permissions every call needs (`gcp_calls`) within the README's roles.

Requests of the tests' own `bq` client are left out; a request a fault rule answered is not
checked, but what it answered counts (a 404 injected on an upload says the bucket is missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlglot import exp

from taxi_pipeline.lib import gcp_roles
from taxi_pipeline_tests.helpers.bigquery_rules import (
    CLUSTERING,
    PARTITIONING,
    TIME_TYPES,
    Rule,
    clustering_problems,
    is_main_table,
    parse,
    rest_type,
    statement_problems,
)
from taxi_pipeline_tests.helpers.bq_proxy import Recorded
from taxi_pipeline_tests.helpers.gcp_calls import PERMISSIONS, Call, classify

NEEDLESS_DDL = Rule(
    "no DDL for what the table's metadata (tables.get) already showed: each DDL statement is a job and "
    "counts toward 50 metadata updates per 10 s per partitioned table",
    "https://cloud.google.com/bigquery/quotas#partitioned_tables")
IAM = Rule(
    "every API call needs only permissions of the least-privilege roles (gcp_roles.ROLES, the README's); "
    "a bucket or dataset is created (gcp_roles.CREATE_ROLES) only after a 404 said it is missing",
    "https://cloud.google.com/iam/docs/roles-permissions/storage, https://cloud.google.com/iam/docs/roles-permissions/bigquery")

_DDL = "https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language"
_DML = "https://cloud.google.com/bigquery/docs/data-manipulation-language#required_permissions"
_QUERY = "https://cloud.google.com/bigquery/docs/running-queries#required_permissions"
_PARTITIONS_VIEW = "https://cloud.google.com/bigquery/docs/information-schema-partitions#required_permissions"
_LOAD = "https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet#required_permissions"
# Needed only to create what is missing: the creating roles', and only after a 404 for it.
_CREATING = {"storage.buckets.create": "bucket", "bigquery.datasets.create": "dataset"}


def request_problems(requests: Iterable[Recorded], granted: frozenset[str] | None = None) -> list[tuple[Rule, str]]:
    granted = gcp_roles.granted() if granted is None else granted
    found: list[tuple[Rule, str]] = []
    tables: dict[str, dict | None] = {}  # table -> its last tables.get answer (None: 404)
    missing: set[tuple[str, str]] = set()  # ("bucket" | "dataset", name) a 404 said is missing
    objects: set[tuple[str, str]] = set()  # objects this test's calls made or saw
    for record in requests:
        call = None if record.by_tests or record.status is None else classify(record)
        if call is None:
            continue
        if record.injected:  # what the pipeline was told counts (a 404 says a bucket is missing)
            _remember(call, tables, missing, objects)
            continue
        where = f"[{record.method} {record.path}]"
        for rule, what in _definition_problems(call, tables):
            found.append((rule, f"{what} {where}"))
        for permission, source in _needed(call, objects):
            if permission in granted:
                continue
            kind = _CREATING.get(permission)
            if kind and (kind, call.names.get(kind, "")) in missing:
                continue
            found.append((IAM, f"{call.method} needs {permission} ({source}), which the roles do not grant {where}"))
        _remember(call, tables, missing, objects)
    return found


def _remember(call: Call, tables: dict, missing: set, objects: set) -> None:
    record, names = call.record, call.names
    if record.status == 404:
        if call.method.startswith("storage.") and names.get("bucket") and call.method in (
                "storage.buckets.get", "storage.objects.insert", "storage.objects.list"):
            missing.add(("bucket", names["bucket"]))
        if call.method == "bigquery.datasets.get":
            missing.add(("dataset", names["dataset"]))
    if call.method == "bigquery.tables.get":
        tables[names["table"]] = record.response if record.status == 200 else None
    if call.method == "bigquery.tables.delete":
        tables.pop(names["table"], None)
    if record.status == 200 and names.get("object"):
        key = (names["bucket"], names["object"])
        (objects.discard if call.method == "storage.objects.delete" else objects.add)(key)


def _statement(record: Recorded) -> tuple[str | None, dict]:
    body = record.body if isinstance(record.body, dict) else {}
    config = body.get("configuration", {})
    if "query" in config:
        return config["query"].get("query"), config
    return body.get("query"), config


def _definition_problems(call: Call, tables: dict) -> Iterator[tuple[Rule, str]]:
    if call.method in ("bigquery.jobs.insert", "bigquery.jobs.query"):
        statement, config = _statement(call.record)
        if statement:
            for rule, what in statement_problems(statement):
                yield rule, f"{what}: {statement}"
            yield from _needless_ddl(statement, tables)
        if "load" in config:
            yield from _table_definition(config["load"].get("destinationTable", {}).get("tableId", ""),
                                         config["load"], config["load"].get("schema", {}).get("fields"))
    if call.method in ("bigquery.tables.insert", "bigquery.tables.patch", "bigquery.tables.update"):
        body = call.record.body if isinstance(call.record.body, dict) else {}
        name = call.names.get("table", "")
        fields = body.get("schema", {}).get("fields") or ((tables.get(name) or {}).get("schema") or {}).get("fields")
        yield from _table_definition(name, body, fields, creates=call.method == "bigquery.tables.insert")


def _table_definition(name: str, spec: dict, fields: list | None, creates: bool = True) -> Iterator[tuple[Rule, str]]:
    types = {f["name"]: rest_type(f) for f in fields or ()}
    columns = (spec.get("clustering") or {}).get("fields") or []
    for problem in clustering_problems(name, columns, types):
        yield CLUSTERING, problem
    if creates and is_main_table(name):
        field = (spec.get("timePartitioning") or {}).get("field")
        if field is None or (types and types.get(field) not in TIME_TYPES):
            yield PARTITIONING, f"{name} is made with timePartitioning {spec.get('timePartitioning')}"


def _needless_ddl(statement: str, tables: dict) -> Iterator[tuple[Rule, str]]:
    tree = parse(statement)
    if isinstance(tree, exp.Create) and tree.args.get("exists"):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if tables.get(target.name) is not None:
            yield NEEDLESS_DDL, f"tables.get found {target.name} just before: {statement}"
    if isinstance(tree, exp.Alter) and isinstance(tree.this, exp.Table):
        known = tables.get(tree.this.name)
        present = {f["name"].lower() for f in ((known or {}).get("schema") or {}).get("fields", [])}
        for action in tree.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef) and action.name.lower() in present:
                yield NEEDLESS_DDL, f"tables.get showed column {action.name} of {tree.this.name} just before: {statement}"


def _needed(call: Call, objects: set) -> Iterator[tuple[str, str]]:
    permissions, source = PERMISSIONS[call.method]
    for permission in permissions:
        yield permission, source
    if call.method in ("storage.objects.insert", "storage.objects.rewrite", "storage.objects.copy"):
        replaces = (call.names.get("bucket"), call.names.get("object")) in objects
        if replaces and call.record.query.get("ifGenerationMatch") != "0":
            yield "storage.objects.delete", source + " (footnote: replacing an object)"
    if call.method in ("bigquery.jobs.insert", "bigquery.jobs.query"):
        statement, config = _statement(call.record)
        if statement:
            yield from statement_permissions(statement)
        if "load" in config:
            for permission in ("bigquery.tables.create", "bigquery.tables.updateData", "bigquery.tables.update",
                               "storage.objects.get", "storage.buckets.get"):
                yield permission, _LOAD


def statement_permissions(statement: str) -> Iterator[tuple[str, str]]:
    """What a query job of `statement` needs on its tables, beyond bigquery.jobs.create."""
    tree = parse(statement)
    reads = [t for t in tree.find_all(exp.Table) if t.name]
    if any("INFORMATION_SCHEMA" in t.sql() for t in reads):
        yield "bigquery.tables.get", _PARTITIONS_VIEW
        yield "bigquery.tables.list", _PARTITIONS_VIEW
        return
    if isinstance(tree, exp.Create):
        yield "bigquery.tables.create", _DDL + "#create_table_statement"
        if tree.args.get("expression") is not None:
            yield "bigquery.tables.updateData", _DDL + "#create_table_statement"
        if tree.args.get("replace"):
            yield "bigquery.tables.update", _DDL + "#create_table_statement"
    elif isinstance(tree, exp.Alter):
        yield "bigquery.tables.get", _DDL + "#alter_table_add_column_statement"
        yield "bigquery.tables.update", _DDL + "#alter_table_add_column_statement"
        return
    elif isinstance(tree, exp.Drop):
        yield "bigquery.tables.delete", _DDL + "#drop_table_statement"
        return
    elif isinstance(tree, (exp.Merge, exp.Insert, exp.Update, exp.Delete)):
        yield "bigquery.tables.updateData", _DML
    if reads:
        yield "bigquery.tables.getData", _DML if isinstance(tree, exp.Merge) else _QUERY


def permissions_used(requests: Iterable[Recorded]) -> dict[str, set[str]]:
    """Each permission the recorded calls need, with the REST methods that need it: the table to
    hold beside the README's roles (`gcp_roles.role_granting`)."""
    used: dict[str, set[str]] = {}
    objects: set[tuple[str, str]] = set()
    for record in requests:
        call = None if record.by_tests or record.injected or record.status is None else classify(record)
        if call is not None:
            for permission, _ in _needed(call, objects):
                used.setdefault(permission, set()).add(call.method)
            _remember(call, {}, set(), objects)
    return used
