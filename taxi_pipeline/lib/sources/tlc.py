"""The NYC TLC's own trip-data folder: one Parquet file per colour and month, flat, every month
from long before 2019 on, published 3-9 weeks after the month ends (https://www.nyc.gov/site/tlc/about/tlc-trip-record-data.page)."""

from __future__ import annotations

import datetime as dt

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.identifiers import validate_object_key
from taxi_pipeline.lib.sources.base import SourceFile
from taxi_pipeline.lib.sources.http import check_base_url
from taxi_pipeline.lib.sources.parquet import ParquetValidator

DEFAULT_TLC_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"


class TlcSource:
    name = "tlc"

    def __init__(self, base_url: str = DEFAULT_TLC_URL):
        self.base_url = check_base_url(base_url, "TAXI_TLC_URL")

    def locate(self, colour: Colour, month: dt.date) -> SourceFile:
        file_name = validate_object_key(f"{colour.name}_tripdata_{month:%Y-%m}.parquet")
        # Kept in the bucket as published, beside the colour's CSVs.
        return SourceFile(self.name, "parquet", f"{self.base_url}/{file_name}", f"{colour.name}/{file_name}", file_name)

    def validator(self, colour: Colour, file: SourceFile) -> ParquetValidator:
        return ParquetValidator(file.file_name, colour)
