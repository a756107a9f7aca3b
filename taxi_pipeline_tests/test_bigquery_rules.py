"""The rule checker that runs after every gcp test (`bigquery_rules`, `request_rules`, `gcp_calls`),
on known-bad statements and call sequences, and on the project's own statements as its SQL module
writes them. Pure Python: no emulator, no network."""

from __future__ import annotations

import datetime as dt

import pytest

from taxi_pipeline.lib import gcp_roles
from taxi_pipeline.lib.colours import GREEN, YELLOW
from taxi_pipeline.lib.warehouses.bigquery import sql
from taxi_pipeline_tests.helpers.bigquery_rules import (
    CLUSTERING,
    PARTITION_FILTER,
    PARTITIONING,
    UNPRUNED_MERGE,
    WHOLE_TABLE_COUNT,
    statement_problems,
)
from taxi_pipeline_tests.helpers.bq_proxy import TEST_AGENT, Recorded
from taxi_pipeline_tests.helpers.gcp_calls import _ROUTES, PERMISSIONS, classify
from taxi_pipeline_tests.helpers.request_rules import IAM, NEEDLESS_DDL, permissions_used, request_problems

T = "`test-project.zoomcamp.green_tripdata`"
BQ = "/bigquery/v2/projects/test-project"


def rules(statement: str) -> set:
    return {rule for rule, _ in statement_problems(statement)}


@pytest.mark.parametrize(("statement", "broken"), [
    (f"CREATE TABLE {T} (unique_row_id BYTES NOT NULL, file_month DATE) PARTITION BY file_month "
     "CLUSTER BY unique_row_id", CLUSTERING),
    (f"CREATE TABLE {T} (a STRING, b STRING, c STRING, d STRING, e STRING, file_month DATE) "
     "PARTITION BY file_month CLUSTER BY a, b, c, d, e", CLUSTERING),
    (f"CREATE TABLE {T} (a FLOAT64, file_month DATE) PARTITION BY file_month CLUSTER BY a", CLUSTERING),
    (f"CREATE TABLE {T} (a STRING, file_month DATE) CLUSTER BY a", PARTITIONING),
    (f"CREATE TABLE {T} (a STRING, file_month STRING) PARTITION BY file_month", PARTITIONING),
    # A MERGE with both NOT MATCHED clauses and an ON that is not FALSE (this project's earlier one).
    (f"MERGE {T} T USING `test-project.zoomcamp.green_tripdata_2020_04` S "
     "ON T.file_month = @file_month AND T.unique_row_id = S.unique_row_id "
     "WHEN NOT MATCHED BY TARGET THEN INSERT (unique_row_id) VALUES (S.unique_row_id) "
     "WHEN NOT MATCHED BY SOURCE AND T.file_month = @file_month THEN DELETE", UNPRUNED_MERGE),
    (f"MERGE {T} T USING `test-project.zoomcamp.s` S ON FALSE "
     "WHEN NOT MATCHED BY TARGET THEN INSERT (unique_row_id) VALUES (S.unique_row_id) "
     "WHEN NOT MATCHED BY SOURCE THEN DELETE", PARTITION_FILTER),
    (f"SELECT file_month, COUNT(*) FROM {T} GROUP BY file_month ORDER BY file_month", PARTITION_FILTER),
    (f"SELECT COUNT(*) FROM {T}", PARTITION_FILTER),
    (f"SELECT COUNT(*) FROM {T} WHERE filename = @filename", PARTITION_FILTER),
    (f"SELECT * FROM {T} WHERE file_month = (SELECT MAX(file_month) FROM {T} WHERE file_month > '2020-01-01')",
     PARTITION_FILTER),
    (f"SELECT * FROM {T} WHERE file_month = @file_month OR TRUE", PARTITION_FILTER),
    ("SELECT COUNT(*) FROM `test-project.zoomcamp.green_tripdata_2020_04`", WHOLE_TABLE_COUNT),
])
def test_a_known_bad_statement_breaks_its_rule(statement, broken):
    assert broken in rules(statement)


@pytest.mark.parametrize("statement", [
    f"SELECT COUNT(*), COUNT(DISTINCT unique_row_id) FROM {T} WHERE file_month = @file_month",
    f"SELECT * FROM {T} t WHERE t.file_month BETWEEN DATE '2020-01-01' AND DATE '2020-03-01' AND t.x = 1",
    f"SELECT * FROM {T} WHERE file_month IN (@a, @b)",
    "SELECT partition_id, total_rows FROM `test-project.zoomcamp.INFORMATION_SCHEMA.PARTITIONS` "
    "WHERE table_name = @table_name",
    "SELECT COUNT(*) FROM `test-project.zoomcamp.green_tripdata_2020_04` WHERE VendorID = '2'",
    "ALTER TABLE `test-project.zoomcamp.green_tripdata__adopting` RENAME TO `green_tripdata`",
    # the operators' documented full scans (README: Operating), named in ALLOWED_FULL_SCANS
    f"SELECT filename, COUNT(*), COUNT(DISTINCT unique_row_id) FROM {T} GROUP BY filename ORDER BY filename",
])
def test_a_good_statement_breaks_no_rule(statement):
    assert statement_problems(statement) == []


@pytest.mark.parametrize("colour", [GREEN, YELLOW], ids=lambda c: c.name)
def test_the_projects_main_table_and_merge_keep_every_rule(colour):
    """The statements as `bigquery/sql.py` writes them: clusterable columns, partitioned by month,
    a MERGE BigQuery can prune, a month's figures from its partition only."""
    statements = [
        sql.create_main_table("test-project", "zoomcamp", colour),
        sql.merge_month("test-project", "zoomcamp", colour, colour.month_table(dt.date(2020, 4, 1))),
        sql.month_stats("test-project", "zoomcamp", colour),
    ]
    assert [(s, p) for s in statements for p in statement_problems(s)] == []


def _call(method: str, path: str, status: int = 200, body=None, response=None, **query) -> Recorded:
    return Recorded(method, path, {k: str(v) for k, v in query.items()}, body, status, response)


def test_bucket_metadata_needs_a_role_that_grants_storage_buckets_get():
    exists = _call("GET", "/storage/v1/b/taxi-1", fields="name")
    assert request_problems([exists]) == []  # Storage Legacy Bucket Reader is among the roles
    without = gcp_roles.granted() - {"storage.buckets.get"}
    [(rule, what)] = request_problems([exists], granted=without)
    assert rule is IAM and "storage.buckets.get" in what


def test_a_dataset_or_bucket_is_created_only_after_a_404_says_it_is_missing():
    create_dataset = _call("POST", f"{BQ}/datasets", body={"datasetReference": {"datasetId": "zoomcamp"}})
    [(rule, what)] = request_problems([create_dataset])  # create_dataset(exists_ok=True) up front
    assert rule is IAM and "bigquery.datasets.create" in what
    assert request_problems([_call("GET", f"{BQ}/datasets/zoomcamp", 404), create_dataset]) == []
    create_bucket = _call("POST", "/storage/v1/b", body={"name": "taxi-1"}, project="test-project")
    assert [r for r, _ in request_problems([create_bucket])] == [IAM]
    upload = _call("POST", "/upload/storage/v1/b/taxi-1/o", 404, uploadType="multipart", name="green/a.csv.gz")
    assert request_problems([upload, create_bucket]) == []
    assert [r for r, _ in request_problems([_call("GET", "/storage/v1/b/taxi-2", 404), create_bucket])] == [IAM]


def test_replacing_an_object_needs_storage_objects_delete():
    upload = _call("POST", "/upload/storage/v1/b/taxi-1/o", uploadType="multipart", name="green/a.csv.gz")
    without = gcp_roles.granted() - {"storage.objects.delete"}
    assert request_problems([upload], granted=without) == []
    [(rule, what)] = request_problems([upload, upload], granted=without)
    assert rule is IAM and "storage.objects.delete" in what


def test_a_load_job_needs_only_the_roles_permissions_including_the_buckets_metadata():
    load = _call("POST", f"{BQ}/jobs", body={"configuration": {"load": {
        "sourceUris": ["gs://taxi-1/green/a.csv.gz"], "destinationTable": {"tableId": "green_tripdata_2020_04__raw"},
        "writeDisposition": "WRITE_TRUNCATE", "sourceFormat": "CSV"}}})
    assert request_problems([load]) == []
    [(rule, what)] = request_problems([load], granted=gcp_roles.granted() - {"storage.buckets.get"})
    assert rule is IAM and "loading-data-cloud-storage" in what


def _job(statement: str) -> Recorded:
    return _call("POST", f"{BQ}/jobs", body={"configuration": {"query": {"query": statement}}})


def test_ddl_for_what_tables_get_just_showed_is_needless():
    create = _job(sql.create_main_table("test-project", "zoomcamp", GREEN))
    found = _call("GET", f"{BQ}/datasets/zoomcamp/tables/green_tripdata", response={"schema": {"fields": [
        {"name": "unique_row_id", "type": "BYTES"}, {"name": "cbd_congestion_fee", "type": "NUMERIC"}]}})
    assert request_problems([_call("GET", f"{BQ}/datasets/zoomcamp/tables/green_tripdata", 404), create]) == []
    assert [r for r, _ in request_problems([found, create])] == [NEEDLESS_DDL]
    add = _job(sql.add_column("test-project", "zoomcamp", GREEN, GREEN.columns[-1]))
    assert [r for r, _ in request_problems([found, add])] == [NEEDLESS_DDL]


def test_a_clustering_change_or_new_table_is_held_to_the_clustering_rules():
    schema = {"fields": [{"name": "unique_row_id", "type": "BYTES"}, {"name": "file_month", "type": "DATE"}]}
    got = _call("GET", f"{BQ}/datasets/zoomcamp/tables/green_tripdata", response={"schema": schema})
    patch = _call("PATCH", f"{BQ}/datasets/zoomcamp/tables/green_tripdata",
                  body={"clustering": {"fields": ["unique_row_id"]}})
    assert [r for r, _ in request_problems([got, patch])] == [CLUSTERING]
    insert = _call("POST", f"{BQ}/datasets/zoomcamp/tables", body={
        "tableReference": {"tableId": "green_tripdata"}, "schema": schema, "clustering": {"fields": ["file_month"]}})
    assert [r for r, _ in request_problems([insert])] == [PARTITIONING]


def test_the_tests_own_requests_and_injected_faults_are_left_out():
    own = _job(f"SELECT COUNT(*) FROM {T}")
    own.user_agent = f"gcloud-python/3.47.0 {TEST_AGENT}"
    injected = _job(f"SELECT COUNT(*) FROM {T}")
    injected.injected = "failed"
    assert request_problems([own, injected]) == []
    missing = _call("POST", "/upload/storage/v1/b/taxi-1/o", 404, uploadType="multipart", name="green/a.csv.gz")
    missing.injected = "failed"
    assert request_problems([missing, _call("POST", "/storage/v1/b", body={"name": "taxi-1"})]) == []
    assert request_problems([_job(f"SELECT COUNT(*) FROM {T}")]) != []


def test_every_route_has_its_documented_permissions():
    assert {name for _, _, name in _ROUTES} <= PERMISSIONS.keys()
    assert all(url.startswith("https://cloud.google.com/") for _, url in PERMISSIONS.values())
    assert classify(_call("GET", "/download/storage/v1/b/taxi-1/o/green%2Fa.csv.gz", alt="media")).names == {
        "bucket": "taxi-1", "object": "green/a.csv.gz"}


def test_the_permissions_a_load_needs_are_listed_with_the_calls_that_need_them():
    calls = [_call("POST", "/upload/storage/v1/b/taxi-1/o", uploadType="multipart", name="green/a.csv.gz"),
             _call("POST", f"{BQ}/jobs", body={"configuration": {"load": {"sourceUris": ["gs://taxi-1/green/a.csv.gz"]}}}),
             _job(sql.month_stats("test-project", "zoomcamp", GREEN))]
    used = permissions_used(calls)
    assert used["storage.objects.create"] == {"storage.objects.insert"}
    assert used["storage.buckets.get"] == {"bigquery.jobs.insert"}  # BigQuery reads the bucket's metadata
    assert used["bigquery.tables.getData"] == {"bigquery.jobs.insert"}
    assert set(used) <= gcp_roles.granted()
