"""Validation of a TLC Parquet file: it is Parquet, whole, and of a schema the colour knows.

The stream is checked as it arrives (the `PAR1` magic first, so an S3 XML error body or an HTML
page is named as such at once); the complete file's footer is then read by pyarrow, from disk, for
the row count and the schema. The footer is a few KiB: nothing else of the month is read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from taxi_pipeline.lib.colours import Colour, LogicalType
from taxi_pipeline.lib.raw_file import FileColumn, layout_to_json
from taxi_pipeline.lib.sources.base import InvalidFileError, Validated

if TYPE_CHECKING:  # pyarrow itself is imported where a footer is read: 0.1 s of every process
    import pyarrow as pa  # start (a run, the CLI, a code server) that never reads one

MAGIC = b"PAR1"

# The kinds of Parquet type each logical type accepts: the TLC's eras store codes as int32, int64
# or double, null-typed fee columns (`ehail_fee`, `airport_fee`), and strings as string or
# large_string. A double in an integer column must hold a whole number (checked in SQL).
ACCEPTED_KINDS = {
    LogicalType.STRING: frozenset({"string", "int", "float", "null"}),
    LogicalType.INTEGER: frozenset({"int", "float", "null"}),
    LogicalType.NUMERIC: frozenset({"float", "int", "decimal", "null"}),
    LogicalType.TIMESTAMP: frozenset({"timestamp", "null"}),
}


def type_kind(arrow_type: pa.DataType) -> str | None:
    """The kind of an Arrow type, or None for a type this pipeline does not load."""
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return "null"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return "string"
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is None:  # the TLC's naive local time
        return "timestamp"
    return None


class ParquetValidator:
    def __init__(self, file_name: str, colour: Colour):
        self._file_name = file_name
        self._colour = colour
        self._head = b""

    def feed(self, chunk: bytes) -> None:
        if len(self._head) < len(MAGIC):
            self._head += chunk[: len(MAGIC) + 512]
            if len(self._head) >= len(MAGIC):
                self._check_head(self._head)

    def finish(self, path: Path) -> Validated:
        size = path.stat().st_size
        if size == 0:
            raise InvalidFileError(self._file_name, "the file is empty (0 bytes), expected Parquet")
        self._check_head(self._head)
        if size < 2 * len(MAGIC) + 4:
            raise InvalidFileError(self._file_name, f"truncated: {size} bytes is too short for a Parquet file")
        with open(path, "rb") as f:
            f.seek(-len(MAGIC), 2)
            if f.read() != MAGIC:
                raise InvalidFileError(
                    self._file_name,
                    f"truncated: the file starts as Parquet but has no PAR1 footer magic at the end "
                    f"({size:,} bytes); the download or the upload at the source was cut short",
                )
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
            schema = parquet.schema_arrow
            rows = parquet.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise InvalidFileError(self._file_name, f"the Parquet footer cannot be read: {exc}") from exc
        layout, unknown = check_schema(self._file_name, self._colour, schema)
        details = {
            "layout": layout_to_json(layout),
            "unknown_columns": ",".join(unknown),
            "parquet_columns": str(len(schema)),
            "row_groups": str(parquet.metadata.num_row_groups),
            "created_by": parquet.metadata.created_by or "",
        }
        return Validated(rows, details)

    def _check_head(self, head: bytes) -> None:
        if head[: len(MAGIC)] == MAGIC:
            return
        start = head.lstrip().lower()
        if start.startswith(b"<?xml") or start.startswith(b"<error"):
            problem = (
                "got an XML error body instead of Parquet (the S3/CloudFront answer for a month that is "
                f"not published, or a denied request): {head[:200].decode('utf-8', 'replace')!r}"
            )
        elif start.startswith((b"<!doctype html", b"<html", b"<head")):
            problem = "got an HTML page instead of Parquet (an error page or a login redirect?)"
        else:
            problem = f"not a Parquet file: it starts with {head[:16]!r}, expected b'PAR1'"
        raise InvalidFileError(self._file_name, problem)


def check_schema(file_name: str, colour: Colour, schema: pa.Schema) -> tuple[tuple[FileColumn, ...], list[str]]:
    """Maps each of the colour's columns to the file's column; returns the layout and the file's
    columns the colour does not know (loaded without them, and reported as schema drift)."""
    fields = {f.name: f for f in schema}
    layout, used = [], set()
    for column in colour.columns:
        found = [name for name in column.names if name in fields]
        if not found:
            if column.in_csv:
                raise InvalidFileError(
                    file_name,
                    f"column {column.name}: missing; expected one of {list(column.names)} "
                    f"({column.type.value}); the file has {list(fields)}",
                )
            layout.append(FileColumn(column.name, None, "missing"))
            continue
        name = found[0]
        arrow_type = fields[name].type
        kind = type_kind(arrow_type)
        if kind == "timestamp" and arrow_type.unit not in ("ms", "us"):
            # BigQuery loads Parquet TIMESTAMP in MILLIS or MICROS only; "other combinations ... are
            # not supported" (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet#parquet_conversions).
            # Refused on both targets, so that they never disagree about a month.
            raise InvalidFileError(
                file_name,
                f"column {name}: timestamps in {arrow_type.unit} units ({arrow_type}); BigQuery loads Parquet "
                "timestamps in milliseconds or microseconds only (the TLC's files use microseconds): rewrite "
                "the file with microsecond timestamps, e.g. pyarrow.parquet.write_table(table, path, "
                "coerce_timestamps='us')",
            )
        if kind not in ACCEPTED_KINDS[column.type]:
            accepted = ", ".join(sorted(ACCEPTED_KINDS[column.type]))
            raise InvalidFileError(
                file_name,
                f"column {name}: incompatible type: expected one of [{accepted}] for {column.type.value}, "
                f"found {arrow_type}",
            )
        used.add(name)
        layout.append(FileColumn(column.name, name, kind))
    unknown = [name for name in fields if name not in used]
    return tuple(layout), unknown
