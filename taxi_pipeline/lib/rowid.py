"""The reference definition of `unique_row_id`, in plain Python; every dialect's SQL matches it.

A row's id names one source row of one file:

    first  = md5(file name, raw text of field 1, ..., raw text of field n)   joined by 0x1F
    id     = first                     for the first copy of a row in the file
    id     = md5(first, k)             for its k-th identical copy (k >= 2)

Fields are hashed as the text in the file (empty for an empty field), never as typed values, so
both targets give the same ids. Distinct rows never share an id; identical rows keep their
multiplicity; the same file gives the same ids on every run. Numbering only the copies keeps the
common case (a row that occurs once) a single hash, with no sort or window over the month.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable, Iterator, Sequence

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
