"""The reference definition of `unique_row_id`, in plain Python; every dialect's SQL matches it.

A row's id names one source row of one file:

    first  = H(file name, raw text of field 1, ..., raw text of field n)   joined by 0x1F
    id     = first                     for the first copy of a row in the file
    id     = H(hex(first), k)          for its k-th identical copy (k >= 2)

H is the MD5 of the text, its 16 bytes read as one unsigned 128-bit number, least significant
byte first: what DuckDB's `md5_number` computes, stored as a `UHUGEINT`. BigQuery stores the
same number as `BYTES`, most significant byte first (`REVERSE(MD5(...))`), so an id's hex,
`hex(id)` here, is `printf('%032x', unique_row_id)` in DuckDB and `TO_HEX(unique_row_id)` in
BigQuery, for the same file. 16 bytes a row, where the 32 hex characters took 18 to 32.

A CSV row's fields are hashed as the text in the file (empty for an empty field), never as typed
values, so both targets give the same ids. A Parquet row has no text: each of the colour's
columns is first given its logical type (`typed_value`: a code stored as 1.0 is the integer 1)
and then hashed as the canonical text of that value (`canonical_text`), which both dialects
spell out in SQL. Distinct rows never share an id; identical rows keep their multiplicity; the
same file gives the same ids on every run. Numbering only the copies keeps the common case (a
row that occurs once) a single hash, with no sort or window over the month.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import hashlib
from collections.abc import Iterable, Iterator, Sequence

from taxi_pipeline.lib.colours import LogicalType

SEPARATOR = "\x1f"


def _md5_number(*parts: str) -> int:
    return int.from_bytes(hashlib.md5(SEPARATOR.join(parts).encode()).digest(), "little")


def hex_id(row_id: int) -> str:
    """An id as its 32 lower-case hex digits: how both targets show it, and how tests compare it."""
    return format(row_id, "032x")


def from_hex_digest(digest: str) -> int:
    """The id an MD5 written as hex (the earlier layout's ids, Kestra's `TO_HEX`) becomes."""
    return int.from_bytes(bytes.fromhex(digest), "little")


def row_id(file_name: str, fields: Sequence[str | None], occurrence: int) -> str:
    """The id in hex (see `hex_id`)."""
    first = _md5_number(file_name, *(field or "" for field in fields))
    return hex_id(first if occurrence == 1 else _md5_number(hex_id(first), str(occurrence)))


def row_ids(file_name: str, rows: Iterable[Sequence[str | None]]) -> Iterator[str]:
    """The ids of a file's rows, in order: the k-th identical copy of a row has occurrence k."""
    seen: collections.Counter[tuple[str, ...]] = collections.Counter()
    for row in rows:
        key = tuple(field or "" for field in row)
        seen[key] += 1
        yield row_id(file_name, key, seen[key])


_NINE_DECIMALS = decimal.Decimal("1e-9")  # NUMERIC is DECIMAL(38, 9) on both targets


def typed_value(logical: LogicalType, kind: str, value: object) -> object:
    """A Parquet value in its column's logical type, as `duckdb.sql.typed_value` computes it."""
    if value is None or kind in ("missing", "null"):
        return None
    if kind == "float" and logical in (LogicalType.STRING, LogicalType.INTEGER):
        if value != int(value):
            raise ValueError(f"{value!r} is not a whole number")
        value = int(value)
    if logical is LogicalType.STRING:
        return str(value)
    if logical is LogicalType.INTEGER:
        return int(value)
    if logical is LogicalType.NUMERIC:
        return decimal.Decimal(value).quantize(_NINE_DECIMALS, rounding=decimal.ROUND_HALF_UP)
    return value


def canonical_text(logical: LogicalType, value: object) -> str:
    """The text a typed value is hashed as: integers in decimal, NUMERIC without trailing zeros
    (`2.5`, `10`, `0`), timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`, NULL as the empty string."""
    if value is None:
        return ""
    if logical is LogicalType.NUMERIC:
        text = format(decimal.Decimal(value) + 0, "f")  # + 0: no negative zero
        return text.rstrip("0").rstrip(".") if "." in text else text
    if logical is LogicalType.TIMESTAMP:
        assert isinstance(value, dt.datetime)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(value)
