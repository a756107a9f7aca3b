"""The production target as a Dagster resource: a GCS bucket and a BigQuery dataset (`lib.targets.gcp`).

Its own module so that the embedded default never imports the Google client libraries.
"""

from __future__ import annotations

from typing import ClassVar

from taxi_pipeline.defs.target import TargetResource
from taxi_pipeline.lib.targets.base import Target
from taxi_pipeline.lib.targets.gcp import GcpTarget


class GcpTargetResource(TargetResource):
    """Production: a GCS bucket and a BigQuery dataset. Credentials come from Application Default
    Credentials or GOOGLE_APPLICATION_CREDENTIALS; the emulators are reached through
    STORAGE_EMULATOR_HOST and `bigquery_endpoint` (BIGQUERY_EMULATOR_HOST)."""

    target_class: ClassVar[type[Target]] = GcpTarget

    project: str
    bucket: str
    dataset: str = "zoomcamp"
    location: str = "US"
    bigquery_endpoint: str | None = None

    def build(self) -> GcpTarget:
        return GcpTarget(self.project, self.bucket, self.dataset, self.location, self.bigquery_endpoint)
