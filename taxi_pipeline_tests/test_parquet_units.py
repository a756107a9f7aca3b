"""The Parquet validator's schema check on the schema of a real TLC file (green 2025-01), with its
timestamps rewritten in other units: pure Python, no server."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.sources.base import InvalidFileError
from taxi_pipeline.lib.sources.parquet import check_schema
from taxi_pipeline_tests.helpers.support import TLC

REAL = TLC / "green_tripdata_2025-01.parquet"


def _with_unit(unit: str) -> pa.Schema:
    schema = pq.read_schema(REAL)
    return pa.schema([f.with_type(pa.timestamp(unit)) if pa.types.is_timestamp(f.type) else f for f in schema])


@pytest.mark.parametrize("unit", ["ms", "us"])
def test_milli_and_microsecond_timestamps_are_accepted(unit):
    layout, unknown = check_schema(REAL.name, GREEN, _with_unit(unit))
    assert {c.name: c.kind for c in layout}["lpep_pickup_datetime"] == "timestamp" and not unknown


@pytest.mark.parametrize("unit", ["ns", "s"])
def test_other_timestamp_units_are_refused_with_the_column_and_the_way_out(unit):
    """BigQuery documents Parquet TIMESTAMP MILLIS and MICROS only (loading-data-cloud-storage-parquet)."""
    with pytest.raises(InvalidFileError) as refused:
        check_schema(REAL.name, GREEN, _with_unit(unit))
    message = str(refused.value)
    assert REAL.name in message and "column lpep_pickup_datetime" in message
    assert "milliseconds or microseconds only" in message and "coerce_timestamps='us'" in message
