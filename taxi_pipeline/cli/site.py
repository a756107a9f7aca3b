"""The target the environment selects, as the operators' commands see it: one warehouse dataset
and one bucket, through the same configuration the code location reads (`build_target`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.warehouses.shape import AdoptResult, ShapeReport


class OperatorError(Exception):
    """A command could not do its work; the message says why. Exit code 1."""

    exit_code = 1


class ConfigError(OperatorError):
    """The environment does not say what to work on (a usage error). Exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class TableInfo:
    name: str  # as the dataset lists it
    qualified: str  # as a user queries it
    rows: int
    bytes: int
    kind: str = "table"  # or "view": its rows are the tables', counted there


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class MainTable:
    colour: Colour
    qualified: str
    files: list[tuple[str, int, int]]  # filename, rows, distinct unique_row_id
    report: ShapeReport


class Site(Protocol):
    warehouse_label: str
    bucket_label: str
    notes: list[str]  # for stderr, e.g. "read from a snapshot copy"

    def main_tables(self, colours: list[Colour]) -> list[MainTable]:
        """The colours' main tables that exist, with rows per file."""

    def tables(self, keep: Callable[[str], bool]) -> list[TableInfo]:
        """The dataset's tables whose name `keep` accepts, with their sizes."""

    def drop_tables(self, names: list[str]) -> None: ...

    def adopt(self, colour: Colour, keep_backup: bool) -> AdoptResult: ...

    def objects(self, prefix: str) -> list[ObjectInfo]:
        """The bucket's objects under `prefix` (e.g. `green/`), with their sizes."""

    def delete_objects(self, keys: list[str]) -> None: ...


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
