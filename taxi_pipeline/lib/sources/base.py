"""What a source is: where a month's file lives, and how its bytes are checked on the way in.

Two implementations: the DataTalksClub release (`release`: gzipped CSV, 2019-01..2021-07) and the
TLC's own site (`tlc`: Parquet, every month). The download loop (`http`) and the assets only use
this interface, so they never branch on the format.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from taxi_pipeline.lib.colours import Colour


class InvalidFileError(ValueError):
    """The file's content is not what the colour's source publishes; the message says where."""

    def __init__(self, file_name: str, problem: str, line: int | None = None):
        where = f"{file_name}, line {line}" if line is not None else file_name
        super().__init__(f"{where}: {problem}")
        self.file_name = file_name
        self.line = line
        self.problem = problem


class SourceNotFoundError(InvalidFileError):
    """The month is not published at the source (HTTP 403/404, or a missing mirror file)."""


class NoSourceError(ValueError):
    """No source is configured to serve this month (e.g. `TAXI_SOURCE=release` after 2021-07)."""


@dataclass(frozen=True)
class SourceFile:
    """One month's file at one source."""

    source: str  # "release" or "tlc"
    format: str  # "csv" or "parquet": how the warehouse reads the object
    url: str
    object_key: str  # where the file is kept in the bucket
    file_name: str  # the rows' `filename` value, e.g. `green_tripdata_2022-01.parquet`


@dataclass(frozen=True)
class Validated:
    """What a validator found: the data rows, and string facts to keep with the object."""

    data_rows: int
    details: dict[str, str] = field(default_factory=dict)


class Validator(Protocol):
    def feed(self, chunk: bytes) -> None:
        """Sees the downloaded bytes in order; raises `InvalidFileError` as soon as they are wrong."""

    def finish(self, path: Path) -> Validated:
        """Called with the complete file on disk; raises `InvalidFileError` if it is not valid."""


class Source(Protocol):
    name: str

    def locate(self, colour: Colour, month: dt.date) -> SourceFile:
        """Where the month's file is, and what it will be called."""

    def validator(self, colour: Colour, file: SourceFile) -> Validator:
        """A fresh validator for one download of `file`."""
