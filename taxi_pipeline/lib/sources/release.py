"""The DataTalksClub release: the course's gzipped CSVs, 2019-01..2021-07, one folder per colour."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.identifiers import validate_object_key
from taxi_pipeline.lib.sources.base import SourceFile, Validated
from taxi_pipeline.lib.sources.csvgz import CsvGzipValidator
from taxi_pipeline.lib.sources.http import check_base_url

DEFAULT_BASE_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"
FIRST_MONTH = dt.date(2019, 1, 1)
LAST_MONTH = dt.date(2021, 7, 1)


class ReleaseSource:
    name = "release"

    def __init__(self, base_url: str = DEFAULT_BASE_URL):
        self.base_url = check_base_url(base_url, "TAXI_SOURCE_URL")

    @staticmethod
    def has(month: dt.date) -> bool:
        return FIRST_MONTH <= month <= LAST_MONTH

    def locate(self, colour: Colour, month: dt.date) -> SourceFile:
        # Kestra's `filename` value names the CSV without `.gz`; the release serves it gzipped.
        file_name = f"{colour.name}_tripdata_{month:%Y-%m}.csv"
        key = validate_object_key(f"{colour.name}/{file_name}.gz")
        return SourceFile(self.name, "csv", f"{self.base_url}/{key}", key, file_name)

    def validator(self, colour: Colour, file: SourceFile) -> _CsvValidator:
        return _CsvValidator(CsvGzipValidator(file.file_name, colour.header))


class _CsvValidator:
    def __init__(self, inner: CsvGzipValidator):
        self._inner = inner

    def feed(self, chunk: bytes) -> None:
        self._inner.feed(chunk)

    def finish(self, path: Path) -> Validated:
        stats = self._inner.finish()
        details = {"uncompressed_bytes": str(stats.uncompressed_bytes)}
        if self._inner.first_quote_line is not None:  # to explain a row count the warehouse disagrees with
            details["first_quote_line"] = str(self._inner.first_quote_line)
        return Validated(stats.data_rows, details)
