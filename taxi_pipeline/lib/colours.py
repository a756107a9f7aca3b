"""The colour table: one entry per taxi colour. A new colour is one more `Colour(...)` below."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from taxi_pipeline.lib.identifiers import validate_identifier


class LogicalType(enum.Enum):
    """The logical column types of Kestra's BigQuery DDL; each dialect maps them to its own."""

    STRING = "STRING"
    TIMESTAMP = "TIMESTAMP"
    INTEGER = "INTEGER"
    NUMERIC = "NUMERIC"


@dataclass(frozen=True)
class Column:
    name: str
    type: LogicalType


@dataclass(frozen=True)
class Colour:
    """Everything the pipeline needs to know about one colour of taxi."""

    name: str
    columns: tuple[Column, ...]
    schedule_hour_utc: int

    def __post_init__(self) -> None:
        validate_identifier("colour", self.name)
        for column in self.columns:
            validate_identifier("column", column.name)

    @property
    def header(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def main_table(self) -> str:
        return f"{self.name}_tripdata"

    def staging_table(self, month: dt.date) -> str:
        return f"{self.name}_tripdata_{month:%Y_%m}"

    def file_name(self, month: dt.date) -> str:
        """Kestra's `filename` value, e.g. `green_tripdata_2020-04.csv`."""
        return f"{self.name}_tripdata_{month:%Y-%m}.csv"

    def object_key(self, month: dt.date) -> str:
        """Where the raw file lives in the bucket, and under the source's base URL."""
        return f"{self.name}/{self.file_name(month)}.gz"


def _columns(spec: str) -> tuple[Column, ...]:
    """Parses `name:TYPE name:TYPE ...`, the compact form of the DDL used below."""
    return tuple(
        Column(name, LogicalType[type_name])
        for name, type_name in (item.split(":") for item in spec.split())
    )


GREEN = Colour(
    name="green",
    columns=_columns(
        "VendorID:STRING lpep_pickup_datetime:TIMESTAMP lpep_dropoff_datetime:TIMESTAMP "
        "store_and_fwd_flag:STRING RatecodeID:STRING PULocationID:STRING DOLocationID:STRING "
        "passenger_count:INTEGER trip_distance:NUMERIC fare_amount:NUMERIC extra:NUMERIC "
        "mta_tax:NUMERIC tip_amount:NUMERIC tolls_amount:NUMERIC ehail_fee:NUMERIC "
        "improvement_surcharge:NUMERIC total_amount:NUMERIC payment_type:INTEGER "
        "trip_type:STRING congestion_surcharge:NUMERIC"
    ),
    schedule_hour_utc=9,
)

YELLOW = Colour(
    name="yellow",
    columns=_columns(
        "VendorID:STRING tpep_pickup_datetime:TIMESTAMP tpep_dropoff_datetime:TIMESTAMP "
        "passenger_count:INTEGER trip_distance:NUMERIC RatecodeID:STRING store_and_fwd_flag:STRING "
        "PULocationID:STRING DOLocationID:STRING payment_type:INTEGER fare_amount:NUMERIC "
        "extra:NUMERIC mta_tax:NUMERIC tip_amount:NUMERIC tolls_amount:NUMERIC "
        "improvement_surcharge:NUMERIC total_amount:NUMERIC congestion_surcharge:NUMERIC"
    ),
    schedule_hour_utc=10,
)

COLOURS: dict[str, Colour] = {colour.name: colour for colour in (GREEN, YELLOW)}
