"""The reference definition of `unique_row_id`, in plain Python; every dialect's SQL matches it.

A row's id names one source row of one file:

    first  = md5(file name, raw text of field 1, ..., raw text of field n)   joined by 0x1F
    id     = first                     for the first copy of a row in the file
    id     = md5(first, k)             for its k-th identical copy (k >= 2)

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


def _md5(*parts: str) -> str:
    return hashlib.md5(SEPARATOR.join(parts).encode()).hexdigest()


def row_id(file_name: str, fields: Sequence[str | None], occurrence: int) -> str:
    first = _md5(file_name, *(field or "" for field in fields))
    return first if occurrence == 1 else _md5(first, str(occurrence))


def row_ids(file_name: str, rows: Iterable[Sequence[str | None]]) -> Iterator[str]:
    """The ids of a file's rows, in order: the k-th identical copy of a row has occurrence k."""
    seen: collections.Counter[tuple[str, ...]] = collections.Counter()
    for row in rows:
        key = tuple(field or "" for field in row)
        seen[key] += 1
        yield row_id(file_name, key, seen[key])


_NINE_DECIMALS = decimal.Decimal("1e-9")  # NUMERIC is DECIMAL(38, 9) on both targets


def typed_value(logical: LogicalType, kind: str, value: object) -> object:
    """A Parquet value in its column's logical type, as `duckdb_sql.typed_value` computes it."""
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
