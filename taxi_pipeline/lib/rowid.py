"""The reference definition of `unique_row_id`, in plain Python; every dialect's SQL matches it.

`md5(file name, raw field texts..., occurrence)` joined by 0x1F: it names one source row of one
file, so distinct rows never share an id and identical rows keep their multiplicity (the n-th copy
of a row gets occurrence n). The same file gives the same ids on every run and every target.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable, Iterator, Sequence

SEPARATOR = "\x1f"


def row_id(file_name: str, fields: Sequence[str | None], occurrence: int) -> str:
    raw = SEPARATOR.join(field or "" for field in fields)
    return hashlib.md5(SEPARATOR.join((file_name, raw, str(occurrence))).encode()).hexdigest()


def row_ids(file_name: str, rows: Iterable[Sequence[str | None]]) -> Iterator[str]:
    """The ids of a file's rows, in order: the n-th identical copy of a row has occurrence n."""
    seen: collections.Counter[tuple[str, ...]] = collections.Counter()
    for row in rows:
        key = tuple(field or "" for field in row)
        seen[key] += 1
        yield row_id(file_name, key, seen[key])
