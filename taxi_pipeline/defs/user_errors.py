"""A step's failure as a user reads it: the error's own line first, its traceback in the failure's metadata.

The errors below are the ones this project raises for a user (a file, a source, a setting, a
table): each message already names the file or setting, the problem and the way out. Raised as
`dg.Failure`, Dagster shows that message as the step's error instead of a traceback through its
own execution machinery, and the run's failure does not repeat it.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator

import dagster as dg

from taxi_pipeline.lib.sources.base import InvalidFileError, NoSourceError
from taxi_pipeline.lib.sources.http import SourceUnavailableError
from taxi_pipeline.lib.stores.base import StoreError
from taxi_pipeline.lib.warehouses.base import WarehouseDamagedError
from taxi_pipeline.lib.warehouses.shape import ForeignTableError

USER_ERRORS = (InvalidFileError, NoSourceError, SourceUnavailableError, StoreError, ForeignTableError,
               WarehouseDamagedError)


@contextlib.contextmanager
def user_errors(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Turns USER_ERRORS into a `dg.Failure` whose description is the error's message; the
    traceback stays in the failure's metadata (the UI shows it under the step's failure)."""
    try:
        yield
    except USER_ERRORS as exc:
        raise dg.Failure(description=f"{exc}", metadata={
            "error": type(exc).__name__, "traceback": dg.MetadataValue.text("".join(traceback.format_exception(exc))),
        }) from None
