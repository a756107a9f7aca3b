"""`preflight`: is this GCP project ready for the pipeline? Asks the services, in the order a user
fixes things: who am I, the bucket, the dataset, where they are, what I may do, then a real smoke
load and the dry runs, the analytics models' SQL last. Each answer becomes a `Check` (see `verdicts`)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from taxi_pipeline.lib import gcp_roles
from taxi_pipeline.lib.analytics.project import AnalyticsProject
from taxi_pipeline.lib.colours import COLOURS, GREEN
from taxi_pipeline.lib.preflight import verdicts
from taxi_pipeline.lib.preflight.analytics import analytics_checks
from taxi_pipeline.lib.preflight.smoke import Smoke
from taxi_pipeline.lib.preflight.verdicts import FAIL, INFO, OK, Check
from taxi_pipeline.lib.targets.gcp import GcpTarget
from taxi_pipeline.lib.warehouses.bigquery.dataset import ensure_dataset


def identity() -> Check:
    """Whose credentials the clients use (Application Default Credentials)."""
    if os.environ.get("BIGQUERY_EMULATOR_HOST"):
        return Check(INFO, "identity", "anonymous credentials, against the emulators at "
                     f"{os.environ.get('BIGQUERY_EMULATOR_HOST')} and {os.environ.get('STORAGE_EMULATOR_HOST')}")
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, project = google.auth.default()
    except DefaultCredentialsError as exc:
        return Check(FAIL, "identity", f"no credentials ({exc}): run `gcloud auth application-default login`, "
                     "or set GOOGLE_APPLICATION_CREDENTIALS to a service account's key file")
    who = getattr(credentials, "service_account_email", None) or "your user (gcloud application-default login)"
    return Check(OK, "identity", f"{who}; the credentials' own project: {project or 'none'}")


class Preflight:
    def __init__(self, target: GcpTarget, analytics: AnalyticsProject | None = None):
        self.gcs, self._client, self.analytics = target.storage_client(), target.bigquery_client, analytics
        self.project, self.bucket_name, self.dataset = target.project, target.bucket, target.dataset
        self.location = target.location
        self.warehouse = target.warehouse()

    def checks(self, smoke: bool = True) -> Iterator[Check]:
        yield identity()
        yield Check(INFO, "project", f"{self.project} (GCP_PROJECT_ID), location {self.location} (GCP_LOCATION)")
        bucket_location = yield from self._bucket()
        with self._client() as client:
            dataset = yield from self._dataset(client)
            if dataset is None:
                return
            yield verdicts.colocated(bucket_location, dataset.location)
            if (wrong := verdicts.configured_location(self.location, dataset.location)) is not None:
                yield wrong
            if not smoke:
                return
            yield from self._smoke(client, dataset)
            newest = {c.main_table: max(self.warehouse.loaded_months(c), default=None) for c in COLOURS.values()}
            yield from analytics_checks(client, self.analytics, newest)

    def _bucket(self) -> Iterator[Check]:
        name = f"gs://{self.bucket_name}"
        try:
            bucket = self.gcs.get_bucket(self.bucket_name)
        except google_errors.NotFound:
            yield Check(FAIL, "bucket", f"{name} does not exist: create it in {self.location} "
                        f"(`gcloud storage buckets create {name} --location={self.location}`), or grant "
                        "Storage Admin on the project so that the first run creates it")
            return None
        except google_errors.Forbidden as exc:
            yield verdicts.missing_permissions(frozenset({"storage.buckets.get"}), set(), name)
            yield Check(FAIL, "bucket", f"{name}: {exc.message}")
            return None
        yield Check(OK, "bucket", f"{name} exists, location {bucket.location or '?'}")
        try:
            granted = bucket.test_iam_permissions(sorted(gcp_roles.BUCKET_PERMISSIONS))
        except google_errors.GoogleAPIError as exc:
            yield Check(INFO, f"permissions on {name}", f"could not be tested here ({type(exc).__name__}: "
                        f"{str(exc)[:120]}); a real project answers testIamPermissions")
        else:
            yield verdicts.missing_permissions(gcp_roles.BUCKET_PERMISSIONS, set(granted), name)
        return bucket.location

    def _dataset(self, client: bigquery.Client) -> Iterator[Check]:
        name = f"{self.project}.{self.dataset}"
        try:
            existed = _exists(client, name)
            dataset = ensure_dataset(client, self.project, self.dataset, self.location)
        except google_errors.Forbidden as exc:
            yield Check(FAIL, "dataset", f"{name}: {exc.message}. Grant BigQuery Data Editor "
                        "(roles/bigquery.dataEditor) on the dataset, after creating it "
                        f"(`bq mk --location={self.location} {self.project}:{self.dataset}`)")
            return None
        except Exception as exc:  # DatasetError, SandboxError: their own words say the way out
            yield Check(FAIL, "dataset", f"{name}: {exc}")
            return None
        yield Check(OK, "dataset", f"{name} {'exists' if existed else 'created'}, location {dataset.location}")
        return dataset

    def _smoke(self, client: bigquery.Client, dataset: bigquery.Dataset) -> Iterator[Check]:
        loaded = self.warehouse.loaded_months(GREEN)
        live_month = max(loaded) if loaded else None
        try:
            result = Smoke(self.gcs, self.warehouse, self.bucket_name).run(client, live_month)
        except Exception as exc:  # the step that failed, in the service's words
            yield Check(FAIL, "smoke load", f"{type(exc).__name__}: {exc}")
            return
        yield verdicts.billing(result.merge_dry_run_error, dataset.default_partition_expiration_ms,
                               dataset.default_table_expiration_ms)
        status = FAIL if result.failures else OK
        yield Check(status, "smoke load", "; ".join(result.loaded + result.failures))
        if result.merge_dry_run_bytes is not None:
            yield self._merge_cost(client, result.merge_dry_run_bytes, result.staged_bytes, result.dry_run_month, live_month)

    def _merge_cost(self, client: bigquery.Client, merge_bytes: int, staged: int, month: str, live_month) -> Check:
        if live_month is None:
            return Check(INFO, "merge cost", f"dry run: {merge_bytes:,} bytes; no green month is loaded yet, so "
                         "pruning cannot be judged on this table")
        table = client.get_table(self.warehouse.table_name(GREEN.main_table))
        month_rows = self.warehouse.loaded_months(GREEN).get(live_month, 0)
        share = month_rows / table.num_rows if table.num_rows else 0
        partition = int((table.num_bytes or 0) * share)
        return verdicts.merge_pruned(merge_bytes, partition, staged, table.num_bytes or 0, month)


def _exists(client: bigquery.Client, dataset: str) -> bool:
    try:
        client.get_dataset(dataset)
    except google_errors.NotFound:
        return False
    return True


def month(text: str) -> dt.date:
    return dt.datetime.strptime(text, "%Y-%m").date()
