"""The dataset the pipeline writes to: found (or created once), and refused with a clear reason
when it cannot hold the months (another location than the run's, or partitions that expire)."""

from __future__ import annotations

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from taxi_pipeline.lib.warehouses.bigquery.jobs import SANDBOX_ADVICE, SandboxError


class DatasetError(RuntimeError):
    """The dataset exists but cannot be used as it is; nothing was written."""


def ensure_dataset(client: bigquery.Client, project: str, name: str, location: str | None) -> bigquery.Dataset:
    """The dataset, created in `location` if missing.

    `get_dataset` first: `create_dataset(exists_ok=True)` needs bigquery.datasets.create even when
    the dataset exists, since the API checks the permission before existence
    (https://github.com/langchain-ai/langchain-google/issues/457,
    https://github.com/google/adk-python/issues/3688), which Data Editor on the dataset lacks.

    The first months of a backfill run at once and all find no dataset. BigQuery answers the
    later creates 409 `duplicate` ("trying to create a job, dataset, or table that already
    exists", https://cloud.google.com/bigquery/docs/error-messages), which `exists_ok` takes as
    success; local-bigquery fails some with "Failed to
    commit DuckLake transaction" (seen failing the deploy test's UI backfill; reproduced in
    test_gcp_merge_faults.py). So a failed create is forgiven when the dataset, read again,
    exists: a concurrent run made it.
    """
    try:
        dataset = client.get_dataset(f"{project}.{name}")
    except google_errors.NotFound:
        wanted = bigquery.Dataset(f"{project}.{name}")
        wanted.location = location
        try:
            dataset = client.create_dataset(wanted, exists_ok=True)
        except google_errors.GoogleAPIError:
            dataset = _made_meanwhile(client, f"{project}.{name}")
            if dataset is None:
                raise  # the create's own error says why
    check_dataset(dataset, location)
    return dataset


def _made_meanwhile(client: bigquery.Client, dataset_id: str) -> bigquery.Dataset | None:
    try:
        return client.get_dataset(dataset_id)
    except google_errors.NotFound:
        return None


def check_dataset(dataset: bigquery.Dataset, location: str | None) -> None:
    where = f"{dataset.project}.{dataset.dataset_id}"
    if location and dataset.location and dataset.location.lower() != location.lower():
        # A load job runs in its dataset's location, and the bucket must be colocated with it
        # (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-csv#data-locations).
        raise DatasetError(
            f"dataset {where} is in {dataset.location}, but this run is configured for {location} "
            f"(GCP_LOCATION): set GCP_LOCATION={dataset.location} (with a bucket in {dataset.location}), "
            "or set TAXI_DATASET to a dataset in the configured location"
        )
    expiry = dataset.default_partition_expiration_ms or dataset.default_table_expiration_ms
    if expiry:
        days = int(expiry) / 86_400_000
        message = (
            f"dataset {where} expires its tables or partitions after {days:g} days, so months older "
            "than that would be deleted as soon as they load (a partition's age is its date, "
            "https://cloud.google.com/bigquery/docs/managing-partitioned-tables#partition-expiration)"
        )
        if round(days) == 60:  # what the sandbox imposes
            raise SandboxError(f"{message}; {SANDBOX_ADVICE}")
        raise DatasetError(
            f"{message}: remove the default expirations "
            f"(`bq update --default_table_expiration 0 --default_partition_expiration 0 {dataset.project}:"
            f"{dataset.dataset_id}`), or set TAXI_DATASET to another dataset"
        )

