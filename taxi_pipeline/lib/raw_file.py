"""A month's raw file as the warehouse sees it: where it is, its format, and, for Parquet, which
of the file's columns holds each of the colour's columns and in what kind of type.

The source's validator works the layout out from the file's footer; it travels with the bucket
object as metadata (JSON), so the staging step needs neither the source nor the file's footer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# The kinds of Parquet types a column can arrive in; each dialect converts each kind to each
# logical type one way (`duckdb.sql.typed_value`, `bigquery.sql.typed_value`).
TYPE_KINDS = ("int", "float", "decimal", "string", "timestamp", "null", "missing")


@dataclass(frozen=True)
class FileColumn:
    """Where the colour's column `name` is in the file: `source` (its spelling there) and the
    kind of its type; kind `missing` means the file does not have it (the column is NULL)."""

    name: str
    source: str | None
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in TYPE_KINDS:
            raise ValueError(f"unknown type kind {self.kind!r} for column {self.name}")


@dataclass(frozen=True)
class RawFile:
    uri: str
    file_name: str  # the rows' `filename` value
    format: str  # "csv" or "parquet"
    md5: str | None = None
    layout: tuple[FileColumn, ...] = ()  # Parquet only
    rows: int | None = None  # the data rows the source's validator counted


def layout_to_json(layout: tuple[FileColumn, ...]) -> str:
    return json.dumps([[c.name, c.source, c.kind] for c in layout], separators=(",", ":"))


def layout_from_json(text: str | None) -> tuple[FileColumn, ...]:
    return tuple(FileColumn(*item) for item in json.loads(text)) if text else ()
