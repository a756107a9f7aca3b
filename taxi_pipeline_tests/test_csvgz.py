"""The streaming validator on small in-memory files (pure functions, no I/O)."""

from __future__ import annotations

import gzip
import random
import re

import pytest

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.sources.csvgz import CsvGzipValidator, InvalidFileError, _count_lines

HEADER = ",".join(GREEN.header)
ROW = "2,2020-04-01 00:44:02,2020-04-01 00:52:23,N,1,42,41,1,1.56,7.5,0.5,0.5,0,0,,0.3,8.8,2,1,0"


def _rows(body: str, chunk: int = 7, gz: bytes | None = None) -> int:
    data = gz if gz is not None else gzip.compress(body.encode())
    validator = CsvGzipValidator("f.csv.gz", GREEN.header)
    for i in range(0, len(data), chunk):
        validator.feed(data[i : i + chunk])
    return validator.finish().data_rows


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (f"{HEADER}\r\n{ROW}\r\n{ROW}\r\n", 2),             # CRLF, as the release
        (f"{HEADER}\n{ROW}\n{ROW}", 2),                     # LF, no final newline
        (f"{HEADER}\r\n{ROW}\r\n\r\n", 1),                  # a blank line at the end
        (f"{HEADER}\r\n{ROW}\r\n\r\n\r\n\n{ROW}\r\n", 2),   # blank lines in between
        (f"\ufeff{HEADER}\r\n{ROW}\r\n", 1),                # a UTF-8 BOM
        (f"{HEADER}\r\n", 0),
        (HEADER, 0),
    ],
)
def test_rows_are_counted_as_the_warehouse_counts_them(body, rows):
    for chunk in (1, 2, 3, 5, 64, 10_000):
        assert _rows(body, chunk) == rows


def test_several_gzip_members_are_one_file():
    gz = gzip.compress(f"{HEADER}\r\n{ROW}\r\n".encode()) + gzip.compress(f"{ROW}\r\n{ROW}\r\n".encode())
    assert _rows("", gz=gz) == 3


def test_members_that_inflate_to_many_pieces_count_every_row_whatever_the_chunks():
    """Each member inflates to ~2.3 MB, many of the validator's 256 KiB pieces, highly compressed
    (a 1 MiB chunk holds far more than one piece of output); a blank line sits inside each."""
    rows = 30_000
    member = gzip.compress(f"{HEADER}\r\n".encode() + f"{ROW}\r\n".encode() * rows + b"\r\n")
    more = gzip.compress(f"{ROW}\r\n".encode() * rows + b"\n" + f"{ROW}\r\n".encode() * 7)
    for chunk in (1 << 20, 65_536, 4_099, len(member) + len(more)):
        assert _rows("", chunk=chunk, gz=member + more) == 2 * rows + 7


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (HEADER.replace(",ehail_fee", ""), "missing column(s) ['ehail_fee']"),
        (HEADER + ",tip_share", "unexpected column(s) ['tip_share']"),
        (HEADER.replace("VendorID,lpep_pickup_datetime", "lpep_pickup_datetime,VendorID"), "different order"),
    ],
)
def test_a_wrong_header_says_what_differs(header, message):
    with pytest.raises(InvalidFileError) as caught:
        _rows(f"{header}\r\n{ROW}\r\n")
    assert caught.value.line == 1 and message in str(caught.value)
    assert str(caught.value).startswith("f.csv.gz, line 1: header does not match")


def test_lines_are_counted_the_same_however_the_text_is_cut():
    """The vectorised count against a plain one, on random text of newlines, CRs and letters cut
    into random pieces (a blank line split across pieces is counted once)."""
    rng = random.Random(7)
    for _ in range(2_000):
        text = bytes(rng.choice(b"\n\n\ra,") for _ in range(rng.randrange(0, 40)))
        blank = len(re.findall(rb"\n(?=\r?\n)", text))
        newlines, blanks, tail, start = 0, 0, b"", 0
        while start < len(text):
            end = start + rng.randrange(1, 6)
            counted = _count_lines(tail, text[start:end])
            newlines, blanks = newlines + counted[0], blanks + counted[1]
            tail, start = (tail + text[start:end])[-2:], end
        assert (newlines, blanks) == (text.count(b"\n"), blank), text
