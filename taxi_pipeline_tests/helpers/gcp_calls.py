"""Which REST method of BigQuery or Cloud Storage a recorded request is, and the IAM permissions
Google's references say it needs: the table `bigquery_rules` holds against `gcp_roles.granted()`.

Each entry names its source. Cloud Storage: one page maps every JSON method to its permissions,
https://cloud.google.com/storage/docs/access-control/iam-json ("Required IAM permissions").
BigQuery: each REST method's page has an "IAM Permissions" section,
https://cloud.google.com/bigquery/docs/reference/rest/v2/<resource>/<method>; what a query job
needs depends on its statement (`statement_permissions` in `bigquery_rules`).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from taxi_pipeline_tests.helpers.bq_proxy import Recorded

_GCS_IAM = "https://cloud.google.com/storage/docs/access-control/iam-json"
_BQ_REST = "https://cloud.google.com/bigquery/docs/reference/rest/v2/"

# method -> (permissions, where Google says so)
PERMISSIONS: dict[str, tuple[frozenset[str], str]] = {
    "storage.buckets.get": (frozenset({"storage.buckets.get"}), _GCS_IAM),
    "storage.buckets.insert": (frozenset({"storage.buckets.create"}), _GCS_IAM),
    "storage.buckets.delete": (frozenset({"storage.buckets.delete"}), _GCS_IAM),
    "storage.buckets.list": (frozenset({"storage.buckets.list"}), _GCS_IAM),
    "storage.buckets.patch": (frozenset({"storage.buckets.update"}), _GCS_IAM),
    "storage.buckets.testIamPermissions": (frozenset(), _GCS_IAM),  # "None"
    "storage.objects.get": (frozenset({"storage.objects.get"}), _GCS_IAM),
    "storage.objects.list": (frozenset({"storage.objects.list"}), _GCS_IAM),
    # + storage.objects.delete when it replaces an object (footnote 7 of the same table)
    "storage.objects.insert": (frozenset({"storage.objects.create"}), _GCS_IAM),
    "storage.objects.upload_chunk": (frozenset(), _GCS_IAM),  # a resumable session's later requests
    "storage.objects.patch": (frozenset({"storage.objects.update"}), _GCS_IAM),
    "storage.objects.delete": (frozenset({"storage.objects.delete"}), _GCS_IAM),
    # source get, destination create (+ delete when it replaces): "Objects rewrite" / "copy" rows
    "storage.objects.rewrite": (frozenset({"storage.objects.get", "storage.objects.create"}), _GCS_IAM),
    "storage.objects.copy": (frozenset({"storage.objects.get", "storage.objects.create"}), _GCS_IAM),
    "storage.objects.compose": (frozenset({"storage.objects.get", "storage.objects.create"}), _GCS_IAM),
    "bigquery.datasets.get": (frozenset({"bigquery.datasets.get"}), _BQ_REST + "datasets/get"),
    "bigquery.datasets.insert": (frozenset({"bigquery.datasets.create"}), _BQ_REST + "datasets/insert"),
    "bigquery.datasets.delete": (frozenset({"bigquery.datasets.delete"}), _BQ_REST + "datasets/delete"),
    "bigquery.datasets.patch": (frozenset({"bigquery.datasets.update"}), _BQ_REST + "datasets/patch"),
    "bigquery.datasets.list": (frozenset(), _BQ_REST + "datasets/list"),  # lists what the caller may see
    "bigquery.tables.get": (frozenset({"bigquery.tables.get"}), _BQ_REST + "tables/get"),
    "bigquery.tables.list": (frozenset({"bigquery.tables.list"}), _BQ_REST + "tables/list"),
    "bigquery.tables.insert": (frozenset({"bigquery.tables.create"}), _BQ_REST + "tables/insert"),
    "bigquery.tables.patch": (frozenset({"bigquery.tables.update"}), _BQ_REST + "tables/patch"),
    "bigquery.tables.update": (frozenset({"bigquery.tables.update"}), _BQ_REST + "tables/update"),
    "bigquery.tables.delete": (frozenset({"bigquery.tables.delete"}), _BQ_REST + "tables/delete"),
    "bigquery.tabledata.list": (frozenset({"bigquery.tables.getData"}), _BQ_REST + "tabledata/list"),
    "bigquery.jobs.insert": (frozenset({"bigquery.jobs.create"}), _BQ_REST + "jobs/insert"),
    "bigquery.jobs.query": (frozenset({"bigquery.jobs.create"}), _BQ_REST + "jobs/query"),
    # "If the user matches the creator of the job": bigquery.jobs.create (+ getData of the results)
    "bigquery.jobs.get": (frozenset({"bigquery.jobs.create"}), _BQ_REST + "jobs/get"),
    "bigquery.jobs.getQueryResults": (frozenset({"bigquery.jobs.create"}), _BQ_REST + "jobs/getQueryResults"),
    "bigquery.jobs.cancel": (frozenset({"bigquery.jobs.create"}), _BQ_REST + "jobs/cancel"),
}

_ROUTES: tuple[tuple[str, str, str], ...] = (  # (HTTP method, path pattern, REST method)
    ("POST", r"/bigquery/v2/projects/(?P<project>[^/]+)/datasets", "bigquery.datasets.insert"),
    ("GET", r"/bigquery/v2/projects/(?P<project>[^/]+)/datasets", "bigquery.datasets.list"),
    ("GET", r"/bigquery/v2/projects/(?P<project>[^/]+)/datasets/(?P<dataset>[^/]+)", "bigquery.datasets.get"),
    ("DELETE", r"/bigquery/v2/projects/(?P<project>[^/]+)/datasets/(?P<dataset>[^/]+)", "bigquery.datasets.delete"),
    ("PATCH", r"/bigquery/v2/projects/(?P<project>[^/]+)/datasets/(?P<dataset>[^/]+)", "bigquery.datasets.patch"),
    ("GET", r"/bigquery/v2/projects/[^/]+/datasets/(?P<dataset>[^/]+)/tables", "bigquery.tables.list"),
    ("POST", r"/bigquery/v2/projects/[^/]+/datasets/(?P<dataset>[^/]+)/tables", "bigquery.tables.insert"),
    ("GET", r"/bigquery/v2/projects/[^/]+/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)", "bigquery.tables.get"),
    ("PATCH", r"/bigquery/v2/projects/[^/]+/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)", "bigquery.tables.patch"),
    ("PUT", r"/bigquery/v2/projects/[^/]+/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)", "bigquery.tables.update"),
    ("DELETE", r"/bigquery/v2/projects/[^/]+/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)", "bigquery.tables.delete"),
    ("GET", r"/bigquery/v2/projects/[^/]+/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)/data", "bigquery.tabledata.list"),
    ("POST", r"/bigquery/v2/projects/[^/]+/jobs", "bigquery.jobs.insert"),
    ("GET", r"/bigquery/v2/projects/[^/]+/jobs/[^/]+", "bigquery.jobs.get"),
    ("POST", r"/bigquery/v2/projects/[^/]+/jobs/[^/]+/cancel", "bigquery.jobs.cancel"),
    ("POST", r"/bigquery/v2/projects/[^/]+/queries", "bigquery.jobs.query"),
    ("GET", r"/bigquery/v2/projects/[^/]+/queries/[^/]+", "bigquery.jobs.getQueryResults"),
    ("GET", r"/storage/v1/b", "storage.buckets.list"),
    ("POST", r"/storage/v1/b", "storage.buckets.insert"),
    ("GET", r"/storage/v1/b/(?P<bucket>[^/]+)", "storage.buckets.get"),
    ("DELETE", r"/storage/v1/b/(?P<bucket>[^/]+)", "storage.buckets.delete"),
    ("PATCH", r"/storage/v1/b/(?P<bucket>[^/]+)", "storage.buckets.patch"),
    ("GET", r"/storage/v1/b/(?P<bucket>[^/]+)/iam/testPermissions", "storage.buckets.testIamPermissions"),
    ("GET", r"/storage/v1/b/(?P<bucket>[^/]+)/o", "storage.objects.list"),
    ("GET", r"/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)", "storage.objects.get"),
    ("GET", r"/download/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)", "storage.objects.get"),
    ("PATCH", r"/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)", "storage.objects.patch"),
    ("PUT", r"/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)", "storage.objects.patch"),
    ("DELETE", r"/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)", "storage.objects.delete"),
    ("POST", r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o", "storage.objects.insert"),
    ("PUT", r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o", "storage.objects.upload_chunk"),
    ("POST", r"/storage/v1/b/(?P<src_bucket>[^/]+)/o/(?P<src>[^/]+)/rewriteTo/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)",
     "storage.objects.rewrite"),
    ("POST", r"/storage/v1/b/(?P<src_bucket>[^/]+)/o/(?P<src>[^/]+)/copyTo/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)",
     "storage.objects.copy"),
    ("POST", r"/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)/compose", "storage.objects.compose"),
)
_COMPILED = tuple((verb, re.compile(pattern + r"/?"), name) for verb, pattern, name in _ROUTES)


@dataclass(frozen=True)
class Call:
    method: str  # e.g. "storage.objects.insert"
    names: dict[str, str]  # bucket, object, dataset, table, ... as the path (or the body) names them
    record: Recorded


def classify(record: Recorded) -> Call | None:
    """The REST method of a request; None for what is no API call of either service."""
    for method, pattern, name in _COMPILED:
        found = pattern.fullmatch(record.path)
        if method == record.method and found:
            names = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
            body = record.body if isinstance(record.body, dict) else {}
            if name == "storage.buckets.insert":
                names["bucket"] = body.get("name", "")
            if name == "storage.objects.insert":
                names["object"] = record.query.get("name") or body.get("name", "")
            if name == "bigquery.datasets.insert":
                names["dataset"] = body.get("datasetReference", {}).get("datasetId", "")
            if name == "bigquery.tables.insert":
                names["table"] = body.get("tableReference", {}).get("tableId", "")
            return Call(name, names, record)
    return None
