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
    """One column of a colour's main table, under its name in the release CSV and the TLC files.

    `in_csv` columns are the release CSV's header, and every TLC Parquet file must have them too;
    the others are columns the TLC added later (NULL for months that lack them). `spellings` are
    the other names a TLC file may use for the column (the TLC renamed `airport_fee` in 2023).
    """

    name: str
    type: LogicalType
    in_csv: bool = True
    spellings: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.spellings)


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
        """The release CSV's exact header."""
        return tuple(column.name for column in self.columns if column.in_csv)

    @property
    def pickup_column(self) -> str:
        """The trip's start (`lpep_pickup_datetime`, `tpep_pickup_datetime`): what analysts filter on."""
        return next(c.name for c in self.columns if c.name.endswith("pickup_datetime"))

    @property
    def csv_columns(self) -> tuple[Column, ...]:
        return tuple(column for column in self.columns if column.in_csv)

    @property
    def main_table(self) -> str:
        return f"{self.name}_tripdata"

    def month_table(self, month: dt.date) -> str:
        """The month's own table: DuckDB keeps each month in one (the main table is a view over
        them); BigQuery stages a month in a table named after it, merged into the main table."""
        return f"{self.name}_tripdata_{month:%Y_%m}"

    @property
    def month_table_pattern(self) -> str:
        """A regular expression matching the names `month_table` gives."""
        return f"{self.name}_tripdata_[0-9]{{4}}_[0-9]{{2}}"


def _columns(spec: str, in_csv: bool = True) -> tuple[Column, ...]:
    """Parses `name:TYPE name:TYPE ...`, the compact form of the DDL used below; `name|other:TYPE`
    lists another spelling of the column in the TLC's files."""
    columns = []
    for item in spec.split():
        names, type_name = item.split(":")
        name, *spellings = names.split("|")
        columns.append(Column(name, LogicalType[type_name], in_csv, tuple(spellings)))
    return tuple(columns)


GREEN = Colour(
    name="green",
    columns=_columns(
        "VendorID:STRING lpep_pickup_datetime:TIMESTAMP lpep_dropoff_datetime:TIMESTAMP "
        "store_and_fwd_flag:STRING RatecodeID:STRING PULocationID:STRING DOLocationID:STRING "
        "passenger_count:INTEGER trip_distance:NUMERIC fare_amount:NUMERIC extra:NUMERIC "
        "mta_tax:NUMERIC tip_amount:NUMERIC tolls_amount:NUMERIC ehail_fee:NUMERIC "
        "improvement_surcharge:NUMERIC total_amount:NUMERIC payment_type:INTEGER "
        "trip_type:STRING congestion_surcharge:NUMERIC"
    ) + _columns("cbd_congestion_fee:NUMERIC", in_csv=False),
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
    ) + _columns("airport_fee|Airport_fee:NUMERIC cbd_congestion_fee:NUMERIC", in_csv=False),
    schedule_hour_utc=10,
)

COLOURS: dict[str, Colour] = {colour.name: colour for colour in (GREEN, YELLOW)}
