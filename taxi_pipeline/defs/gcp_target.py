"""The production target: a GCS bucket and a BigQuery dataset, through dagster-gcp's resources.

Its own module so that the embedded default never imports the Google client libraries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import ClassVar

import dagster as dg
from dagster_gcp import BigQueryResource, GCSResource
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from taxi_pipeline.defs.target import TargetResource
from taxi_pipeline.lib.admin.base import Admin
from taxi_pipeline.lib.admin.gcp import GcpAdmin
from taxi_pipeline.lib.analytics.project import bigquery_profile
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.stores.base import ObjectStore
from taxi_pipeline.lib.stores.gcs import GcsObjectStore
from taxi_pipeline.lib.warehouses.base import Warehouse
from taxi_pipeline.lib.warehouses.bigquery.warehouse import BigQueryWarehouse

__all__ = ["GCSResource", "GcpTarget", "TaxiBigQueryResource"]


class TaxiBigQueryResource(BigQueryResource):
    """dagster-gcp's BigQueryResource, plus an endpoint for a local emulator (it has none)."""

    api_endpoint: str | None = None

    @contextlib.contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        if not self.api_endpoint:
            with super().get_client() as client:  # ADC, GOOGLE_APPLICATION_CREDENTIALS or gcp_credentials
                yield client
            return
        client = bigquery.Client(
            project=self.project, location=self.location, credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.api_endpoint},
        )
        try:
            yield client
        finally:
            client.close()


class GcpTarget(TargetResource):
    """Production: a GCS bucket and a BigQuery dataset, through dagster-gcp's resources.

    Credentials come from Application Default Credentials or GOOGLE_APPLICATION_CREDENTIALS; the
    emulators are reached through STORAGE_EMULATOR_HOST and BIGQUERY_EMULATOR_HOST.
    """

    store_kind: ClassVar[str] = "gcs"
    warehouse_kind: ClassVar[str] = "bigquery"

    bucket: str
    dataset: str = "zoomcamp"
    gcs: GCSResource
    bigquery: TaxiBigQueryResource

    def store(self) -> ObjectStore:
        return GcsObjectStore(self.gcs.get_client(), self.bucket, self.bigquery.location)

    def admin(self) -> Admin:
        return GcpAdmin(self.bigquery.get_client, self.bigquery.project, self.dataset, self.gcs.get_client(),
                        self.bucket)

    @classmethod
    def analytics_output(cls) -> dict:
        env = dg.EnvVar
        return bigquery_profile(env("GCP_PROJECT_ID").get_value(""), env("TAXI_DATASET").get_value("zoomcamp"),
                                env("GCP_LOCATION").get_value("US"), env("BIGQUERY_EMULATOR_HOST").get_value())

    def warehouse(self, log: Callable[[str], None] | None = None) -> Warehouse:
        return BigQueryWarehouse(self.bigquery.get_client, self.bigquery.project, self.dataset, self.bigquery.location,
                                 log=log)

    @classmethod
    def pools(cls, colour: Colour) -> dict[str, str | None]:
        # BigQuery runs one DML statement per table at a time: only a colour's merges wait for
        # each other. Staging writes the month's own table (a load job and a CREATE TABLE AS), so
        # it needs no slot, and the two colours' merges never wait for each other.
        return {"staging": None, "merge": f"bigquery_{colour.main_table}"}
