"""The target the environment selects, as the operators' commands see it: one warehouse dataset
and one bucket, through the same configuration the code location reads (`build_target`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from taxi_pipeline.cli.site import ConfigError, Site


@contextlib.contextmanager
def open_site() -> Iterator[Site]:
    """The target of `TAXI_TARGET` (default `local`), configured like the code location."""
    from taxi_pipeline.defs.resources import build_target

    name = os.environ.get("TAXI_TARGET", "local")
    try:
        resource = build_target(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    # Resolves the dg.EnvVar fields and sets up nested resources, as Dagster does for an asset.
    with resource.process_config_and_initialize_cm() as target:
        yield _site(name, target)


def _site(name: str, target) -> Site:
    if name == "local":
        from taxi_pipeline.cli.local_site import LocalSite

        warehouse, store = target.warehouse(), target.store()
        return LocalSite(warehouse.path, warehouse.dataset, store.root)
    # Imported here: the Google client libraries are slow to import and `local` never needs them.
    from taxi_pipeline.cli.gcp_site import GcpSite

    store = target.store()
    bigquery = target.bigquery
    return GcpSite(bigquery.get_client, bigquery.project, target.dataset, store.client, store.bucket_name)
