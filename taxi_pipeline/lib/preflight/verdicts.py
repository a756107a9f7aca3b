"""What `preflight` concludes from the services' answers: plain functions of those answers, so the
refusals are tested on recorded answers where no emulator can give them (IAM, locations, the
sandbox)."""

from __future__ import annotations

from dataclasses import dataclass

from taxi_pipeline.lib import gcp_roles

OK, FAIL, INFO = "ok", "FAIL", "info"


@dataclass(frozen=True)
class Check:
    status: str  # OK, FAIL or INFO (a fact, or a part only a real project can answer)
    name: str
    detail: str

    def line(self) -> str:
        return f"  {self.status:<5} {self.name}: {self.detail}"


def missing_permissions(wanted: frozenset[str], granted: set[str] | frozenset[str], where: str) -> Check:
    """Each permission the caller lacks, with the role that grants it."""
    missing = sorted(wanted - set(granted))
    if not missing:
        return Check(OK, f"permissions on {where}", ", ".join(sorted(wanted)))
    fixes = []
    for permission in missing:
        role = gcp_roles.role_granting(permission)
        fixes.append(f"{permission} (grant {role.title}, {role.name}, on {role.granted_on})" if role
                     else permission)
    return Check(FAIL, f"permissions on {where}", "missing " + "; ".join(fixes))


def colocated(bucket_location: str | None, dataset_location: str | None) -> Check:
    """A load job runs in the dataset's location, and "the Cloud Storage bucket must be in the same
    region or contained in the same multi-region as the dataset"
    (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-csv#data-locations):
    `US` holds the `us-*` regions, `EU` the `europe-*` ones."""
    if not bucket_location or not dataset_location:
        return Check(INFO, "locations", f"bucket {bucket_location or '?'}, dataset {dataset_location or '?'}: "
                     "not both known, so not compared")
    bucket, dataset = bucket_location.lower(), dataset_location.lower()
    inside = {"us": "us-", "eu": "europe-"}
    if bucket == dataset or (dataset in inside and bucket.startswith(inside[dataset])):
        return Check(OK, "locations", f"bucket {bucket_location}, dataset {dataset_location}: colocated")
    return Check(FAIL, "locations", (
        f"the bucket is in {bucket_location} and the dataset in {dataset_location}: BigQuery cannot "
        "load from a bucket outside the dataset's location. Use a bucket in "
        f"{dataset_location} (GCP_BUCKET_NAME), or a dataset in {bucket_location} (TAXI_DATASET, GCP_LOCATION)"))


def configured_location(configured: str | None, dataset_location: str | None) -> Check | None:
    if configured and dataset_location and configured.lower() != dataset_location.lower():
        return Check(FAIL, "GCP_LOCATION", (
            f"{configured}, but the dataset is in {dataset_location}: jobs run in the dataset's location; "
            f"set GCP_LOCATION={dataset_location}"))
    return None


SANDBOX_WORDS = ("free tier", "sandbox", "billing has not been enabled", "billing is not enabled")


def billing(dml_dry_run_error: str | None, partition_expiration_ms: int | None,
            table_expiration_ms: int | None) -> Check:
    """The sandbox refuses DML and expires every table and partition after 60 days
    (https://cloud.google.com/bigquery/docs/sandbox#limitations)."""
    if dml_dry_run_error and any(word in dml_dry_run_error.lower() for word in SANDBOX_WORDS):
        return Check(FAIL, "billing", (
            f"BigQuery refused the month's MERGE: {dml_dry_run_error.strip()[:200]}. This looks like "
            "the BigQuery sandbox (no billing account): it refuses DML and expires partitions after "
            "60 days. Enable billing: https://cloud.google.com/bigquery/docs/sandbox#upgrade"))
    expiry = partition_expiration_ms or table_expiration_ms
    if expiry:
        days = int(expiry) / 86_400_000
        sandbox = " (the sandbox's 60 days: enable billing, then remove it)" if round(days) == 60 else ""
        return Check(FAIL, "expiration", (
            f"the dataset expires tables or partitions after {days:g} days{sandbox}; a partition's age "
            "is its date, so 2019's months would be deleted as soon as they load. Remove it: "
            "bq update --default_table_expiration 0 --default_partition_expiration 0 <project>:<dataset>"))
    if dml_dry_run_error:
        return Check(FAIL, "billing", f"the month's MERGE was refused: {dml_dry_run_error.strip()[:300]}")
    return Check(OK, "billing", "DML accepted (dry run), no table or partition expiry: not a sandbox")


def merge_pruned(merge_bytes: int, partition_bytes: int, staged_bytes: int, table_bytes: int, month: str) -> Check:
    """A pruned merge reads at most the month's partition and the staged rows; an unpruned one
    reads the id and month columns of every partition."""
    detail = (f"the MERGE of {month} would process {merge_bytes:,} bytes (the month's partition: "
              f"{partition_bytes:,}; staged rows: {staged_bytes:,}; the whole table: {table_bytes:,})")
    if merge_bytes <= partition_bytes + staged_bytes:
        return Check(OK, "merge cost", detail + ": one partition")
    return Check(FAIL, "merge cost", detail + ": more than one partition, so each month's merge would be billed "
                 "for history; report this with the figures")
