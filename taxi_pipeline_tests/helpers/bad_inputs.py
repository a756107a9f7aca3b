"""The bad inputs every target must refuse, each with the step that must refuse it and what its
message must say; `test_bad_input.py` (DuckDB) and `test_gcp_bad_input.py` (GCS + BigQuery) run
them all and check the main table, the bucket and the failed step.

CSV cases are real green 2020-04 (and 2020-10, the issue's reproduction) with one thing broken;
Parquet cases are the real green 2025-01 TLC file with one thing broken.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline_tests.helpers.support import DATA, MIRROR, TLC

RAW, STAGING = "green_raw_file", "green_staging"
XML_403 = (DATA / "responses" / "cloudfront_403_accessdenied_body.xml").read_bytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass(frozen=True)
class Case:
    name: str
    month: str  # "2020-04"
    format: str  # "csv" or "parquet"
    body: Callable[[], bytes | None]  # None: the source has no file (404 / 403)
    step: str  # the step that must fail
    expected: tuple[str, ...]  # in the error message on every target
    duckdb_expected: tuple[str, ...] = ()  # and on DuckDB, which also knows the line
    forbidden: bool = False  # answer 403 + the TLC's XML body, as CloudFront does

    @property
    def file_name(self) -> str:
        return f"green_tripdata_{self.month}.{self.format}"

    @property
    def object_name(self) -> str:
        return self.file_name + (".gz" if self.format == "csv" else "")

    @property
    def partition(self) -> str:
        return f"{self.month}-01"


def _text(month: str) -> bytes:
    return gzip.decompress((MIRROR / "green" / f"green_tripdata_{month}.csv.gz").read_bytes())


def _line(month: str, number: int, new: bytes) -> Callable[[], bytes]:
    def build() -> bytes:
        lines = _text(month).split(b"\r\n")
        lines[number - 1] = new if not callable(new) else new(lines[number - 1])
        return gzip.compress(b"\r\n".join(lines), mtime=0)
    return build


def _field(month: str, number: int, column: str, value: bytes) -> Callable[[], bytes]:
    def change(line: bytes) -> bytes:
        fields = line.split(b",")
        fields[GREEN.header.index(column)] = value
        return b",".join(fields)
    return _line(month, number, change)


def _header(month: str, change: Callable[[bytes], bytes]) -> Callable[[], bytes]:
    return _line(month, 1, change)


def _bad_crc() -> bytes:
    data = bytearray(gzip.compress(_text("2020-04"), mtime=0))
    crc = struct.unpack("<I", data[-8:-4])[0]
    data[-8:-4] = struct.pack("<I", crc ^ 0xFFFF)
    return bytes(data)


def _parquet(**change) -> Callable[[], bytes]:
    def build() -> bytes:
        table = pq.read_table(TLC / "green_tripdata_2025-01.parquet")
        if "drop" in change:
            table = table.drop_columns([change["drop"]])
        if "as_text" in change:
            name = change["as_text"]
            table = table.set_column(table.column_names.index(name), name, table.column(name).cast(pa.string()))
        if "ratecode" in change:
            codes = table.column("RatecodeID").cast(pa.float64()).to_pylist()
            codes[7] = change["ratecode"]
            table = table.set_column(table.column_names.index("RatecodeID"), "RatecodeID", pa.array(codes, pa.float64()))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()
    return build


A, O = "2020-04", "2020-10"
CSV_CASES = [
    Case("html_page", A, "csv", lambda: b"<!DOCTYPE html><html><body>Rate limited</body></html>", RAW, ("HTML page",)),
    Case("empty_body", A, "csv", lambda: b"", RAW, ("empty",)),
    Case("plain_csv", A, "csv", lambda: _text(A), RAW, ("plain CSV, expected a gzipped CSV",)),
    Case("truncated_gzip", A, "csv", lambda: gzip.compress(_text(A), mtime=0)[:300_000], RAW, ("truncated",)),
    Case("bad_crc", A, "csv", _bad_crc, RAW, ("corrupt gzip data", "checksum")),
    Case("missing_column", A, "csv", _header(A, lambda h: h.replace(b",ehail_fee", b"")), RAW,
         ("line 1", "missing column(s) ['ehail_fee']")),
    Case("extra_column", A, "csv", _header(A, lambda h: h + b",extra_col"), RAW, ("line 1", "unexpected column(s) ['extra_col']")),
    Case("reordered_columns", A, "csv", _header(A, lambda h: h.replace(b"PULocationID,DOLocationID", b"DOLocationID,PULocationID")),
         RAW, ("line 1", "different order")),
    Case("not_published", A, "csv", lambda: None, RAW, ("not published at the source (HTTP 404)",)),
    # What the warehouse's CSV reader would stop at, found while downloading, with the line.
    Case("line_too_long", A, "csv", _field(A, 5, "store_and_fwd_flag", b"N" * 3_000_000), RAW,
         ("line 5", "over 2,000,000 bytes long")),
    Case("mixed_line_endings", A, "csv",
         lambda: gzip.compress(b"\r\n".join(_text(A).split(b"\r\n")[:5000]) + b"\n"
                               + b"\r\n".join(_text(A).split(b"\r\n")[5000:]), mtime=0), RAW,
         ("line 5000", "ends with \\n where the header and the lines before end with \\r\\n")),
    # Field-level errors are found while staging: the file waits aside and the month keeps its object.
    Case("too_few_fields", A, "csv", _line(A, 1234, b"2,2020-04-01 00:44:02,2020-04-01 00:52:23,N"), STAGING,
         (), ("line 1234", "expected 20 fields, found 4")),
    Case("too_many_fields", A, "csv", _line(A, 20_000, lambda line: line + b",7"), STAGING,
         (), ("line 20000", "expected 20 fields, found 21")),
    Case("non_numeric", A, "csv", _field(A, 31_000, "fare_amount", b"12x5"), STAGING,
         ("column fare_amount: '12x5' is not a valid NUMERIC",), ("line 31000",)),
    Case("bad_integer", A, "csv", _field(A, 7, "passenger_count", b"two"), STAGING,
         ("column passenger_count: 'two' is not a valid INTEGER",), ("line 7",)),
    Case("bad_timestamp", A, "csv", _field(A, 35_000, "lpep_pickup_datetime", b"2020-04-31 25:61:00"), STAGING,
         ("lpep_pickup_datetime", "not a valid TIMESTAMP"), ("line 35000",)),
    # The reproduction: green 2020-10 loaded, then served with one bad value on line 5,001.
    Case("twelve_fare", O, "csv", _field(O, 5001, "fare_amount", b"twelve"), STAGING,
         ("column fare_amount: 'twelve' is not a valid NUMERIC",), ("green_tripdata_2020-10.csv, line 5001",)),
    Case("fractional_payment_type", O, "csv", _field(O, 5001, "payment_type", b"1.5"), STAGING,
         ("column payment_type: '1.5' is not a valid INTEGER",), ("green_tripdata_2020-10.csv, line 5001",)),
]

P = "2025-01"
PARQUET_CASES = [
    Case("403_not_published", P, "parquet", lambda: None, RAW, ("not published at the source (HTTP 403)",), forbidden=True),
    Case("xml_error_body_served_as_200", P, "parquet", lambda: XML_403, RAW, ("XML error body", "AccessDenied")),
    Case("html_page", P, "parquet", lambda: b"<!DOCTYPE html><html><body>Service Unavailable</body></html>", RAW, ("HTML page",)),
    Case("truncated", P, "parquet", lambda: (TLC / "green_tripdata_2025-01.parquet").read_bytes()[:400_000], RAW,
         ("truncated", "no PAR1 footer")),
    Case("missing_core_column", P, "parquet", _parquet(drop="fare_amount"), RAW, ("column fare_amount: missing",)),
    Case("incompatible_type", P, "parquet", _parquet(as_text="lpep_pickup_datetime"), RAW,
         ("column lpep_pickup_datetime: incompatible type", "found string")),
    Case("code_not_a_whole_number", P, "parquet", _parquet(ratecode=1.5), STAGING, ("RatecodeID", "1.5")),
]

CASES = {f"{c.format}-{c.name}": c for c in [*CSV_CASES, *PARQUET_CASES]}
MONTHS = sorted({c.month for c in CASES.values()})


def forbidden(handler, path) -> bool:
    handler.send_response(403)
    handler.send_header("Content-Type", "application/xml")
    handler.send_header("Content-Length", str(len(XML_403)))
    handler.end_headers()
    handler.wfile.write(XML_403)
    return True


def failure(result) -> tuple[str, str]:
    """The step that failed, and its error with every cause, as one text."""
    [failed] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error, messages = failed.step_failure_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return failed.step_key, "\n".join(messages)


def raw_materializations(result) -> list[dict]:
    """The raw asset's materializations of the run, in order, as plain metadata."""
    return [{k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events() if e.asset_key.path == [RAW]]
