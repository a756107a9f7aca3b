"""What DuckDB's errors mean to a user: a damaged warehouse file, or a CSV the reader stops at,
said with the file, the line and the column where DuckDB's message tells them."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from taxi_pipeline.lib.sources.base import InvalidFileError

_CSV_ERROR_LINE = re.compile(r"CSV Error on Line: (\d+)")
_FIELD_COUNT = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


# What DuckDB says when the file's bytes are not what it wrote (DuckDB 2.0.1's messages).
_DAMAGE = ("not a valid DuckDB database file", "Corrupt database file", "Could not read enough bytes from file",
           "computed checksum")


def is_damage(message: str) -> bool:
    return any(text in message for text in _DAMAGE)


def damage_message(path: Path, error: str) -> str:
    return (
        f"{path}: the warehouse file is damaged ({error.splitlines()[0]}). Nothing was written to it and it "
        f"stays as it is. Restore it from a copy; or move it aside (mv {path} {path}.damaged), start each "
        "colour afresh (python -m taxi_pipeline fresh-start green --yes, then yellow) and load the months "
        "again (a backfill)"
    )


def csv_error(file_name: str, exc: duckdb.Error, header: tuple[str, ...] = ()) -> InvalidFileError:
    text = str(exc)
    line = _CSV_ERROR_LINE.search(text)
    counts = _FIELD_COUNT.search(text)
    if counts:
        problem = f"expected {counts[1]} fields, found {counts[2]}"
    elif "Invalid unicode" in text:
        problem = "the bytes are not valid UTF-8" + _unicode_column(text, header) + " (the release's files are UTF-8)"
    elif "state machine reached an invalid state" in text:
        problem = ("the warehouse's CSV reader cannot parse the file (a quote left open, or line endings that "
                   "change within it); the release's files are plain RFC 4180 CSV")
    else:
        problem = text.splitlines()[0]
    return InvalidFileError(file_name, problem, line=int(line[1]) if line else None)


def _unicode_column(text: str, header: tuple[str, ...]) -> str:
    """The column whose field DuckDB printed with a replacement for its bad bytes, if it says."""
    lines = text.splitlines()
    if "Original Line: " not in lines or lines.index("Original Line: ") + 1 >= len(lines):
        return ""
    fields = lines[lines.index("Original Line: ") + 1].split(",")
    bad = [i for i, f in enumerate(fields) if "?" in f or "\ufffd" in f]
    return f" in column {header[bad[0]]}" if bad and len(fields) == len(header) else ""
