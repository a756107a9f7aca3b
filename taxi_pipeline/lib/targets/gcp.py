"""The production target: a GCS bucket and a BigQuery dataset.

Credentials come from Application Default Credentials (or GOOGLE_APPLICATION_CREDENTIALS), as
Google's clients find them. The emulators: google-cloud-storage reads STORAGE_EMULATOR_HOST itself;
BigQuery's client has no such variable, so `bigquery_endpoint` points it at one, with anonymous
credentials (an emulator checks none). Its own module so that the embedded default never imports
the Google client libraries (~0.7 s, paid by every run process and CLI call otherwise).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage

from taxi_pipeline.lib.admin.gcp import GcpAdmin
from taxi_pipeline.lib.analytics.project import bigquery_profile
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.stores.gcs import GcsObjectStore
from taxi_pipeline.lib.warehouses.bigquery.warehouse import BigQueryWarehouse


@dataclass(frozen=True)
class GcpTarget:
    name: ClassVar[str] = "gcp"
    store_kind: ClassVar[str] = "gcs"
    warehouse_kind: ClassVar[str] = "bigquery"

    project: str
    bucket: str
    dataset: str = "zoomcamp"
    location: str = "US"
    bigquery_endpoint: str | None = None  # an emulator's, e.g. http://127.0.0.1:9050

    @contextlib.contextmanager
    def bigquery_client(self) -> Iterator[bigquery.Client]:
        if self.bigquery_endpoint:
            client = bigquery.Client(project=self.project, location=self.location, credentials=AnonymousCredentials(),
                                     client_options={"api_endpoint": self.bigquery_endpoint})
        else:
            client = bigquery.Client(project=self.project, location=self.location)
        try:
            yield client
        finally:
            client.close()

    def storage_client(self) -> storage.Client:
        return storage.Client(project=self.project)

    def store(self) -> GcsObjectStore:
        return GcsObjectStore(self.storage_client(), self.bucket, self.location)

    def warehouse(self, log: Callable[[str], None] | None = None) -> BigQueryWarehouse:
        return BigQueryWarehouse(self.bigquery_client, self.project, self.dataset, self.location, log=log)

    def admin(self) -> GcpAdmin:
        return GcpAdmin(self.bigquery_client, self.project, self.dataset, self.storage_client(), self.bucket)

    def analytics_output(self) -> dict:
        return bigquery_profile(self.project, self.dataset, self.location, self.bigquery_endpoint)

    @classmethod
    def analytics_pool(cls) -> str | None:
        return None

    @classmethod
    def pools(cls, colour: Colour) -> dict[str, str | None]:
        # BigQuery runs one DML statement per table at a time: only a colour's merges wait for
        # each other. Staging writes the month's own table (a load job and a CREATE TABLE AS), so
        # it needs no slot, and the two colours' merges never wait for each other.
        return {"staging": None, "merge": f"bigquery_{colour.main_table}"}
