"""The production target's admin: a BigQuery dataset and a GCS bucket."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from google.api_core import exceptions as google_errors
from google.cloud import bigquery, storage

from taxi_pipeline.lib.admin.base import MainTable, ObjectInfo, OperatorError, TableInfo
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.warehouses.bigquery import admin
from taxi_pipeline.lib.warehouses.shape import AdoptResult

ClientFactory = Callable[[], contextlib.AbstractContextManager[bigquery.Client]]


class GcpAdmin:
    def __init__(self, client: ClientFactory, project: str, dataset: str, gcs: storage.Client, bucket: str):
        self.client_factory = client  # BigQuery clients, as the code location makes them
        self.project = project
        self.dataset = dataset
        self.gcs = gcs
        self.bucket = bucket
        self.warehouse_label = f"BigQuery dataset {project}.{dataset}"
        self.bucket_label = f"gs://{bucket}"
        self.notes: list[str] = []

    def main_tables(self, colours: list[Colour]) -> list[MainTable]:
        found = []
        with self._dataset() as ds:
            if not self._dataset_exists(ds):
                raise OperatorError(f"no dataset {self.project}.{self.dataset}: load a month first")
            for colour in colours:
                report = admin.table_report(ds, colour, colour.main_table)
                if report is not None:
                    files = admin.file_counts(ds, colour.main_table)
                    found.append(MainTable(colour, report.table, files, report))
        return found

    def tables(self, keep: Callable[[str], bool]) -> list[TableInfo]:
        with self._dataset() as ds:
            found = {name: kind for name, kind in ds.tables().items() if keep(name)}
            return [TableInfo(name, ds.table_id(name), *admin.table_size(ds, name), kind)
                    for name, kind in found.items()]

    def drop_tables(self, names: list[str]) -> None:
        with self._dataset() as ds:
            admin.drop_tables(ds, names)

    def adopt(self, colour: Colour, keep_backup: bool) -> AdoptResult:
        with self._dataset() as ds:
            return admin.adopt(ds, colour, keep_backup=keep_backup)

    def objects(self, prefix: str) -> list[ObjectInfo]:
        try:
            blobs = self.gcs.list_blobs(self.bucket, prefix=prefix)
            return [ObjectInfo(blob.name, blob.size or 0) for blob in blobs]
        except google_errors.NotFound:  # no bucket yet: nothing in it
            return []

    def delete_objects(self, keys: list[str]) -> None:
        bucket = self.gcs.bucket(self.bucket)
        for key in keys:
            with contextlib.suppress(google_errors.NotFound):  # gone already: the goal
                bucket.blob(key).delete()

    @contextlib.contextmanager
    def _dataset(self) -> Iterator[admin.Dataset]:
        with self.client_factory() as client:
            yield admin.Dataset(client, self.project, self.dataset)

    @staticmethod
    def _dataset_exists(ds: admin.Dataset) -> bool:
        try:
            ds.client.get_dataset(f"{ds.project}.{ds.name}")
        except google_errors.NotFound:
            return False
        return True
