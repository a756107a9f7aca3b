"""Parquet files in the TLC's exact per-era types, written from real CSV rows.

No real yellow Parquet file could be had here (every one is over 4 MiB), so the tests build
yellow months from the real yellow CSV rows in `data/mirror`, typed as the TLC's files of each era
are (read from the TLC's own files, https://d37ci6vzurychx.cloudfront.net/trip-data/, with pyarrow). The green eras are here too, so the same real
rows can be compared as CSV and as Parquet. The real green TLC files are in `data/tlc`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

I32, I64, F64, NULL = pa.int32(), pa.int64(), pa.float64(), pa.null()
TS, STR, LSTR = pa.timestamp("us"), pa.string(), pa.large_string()

_GREEN_A = {
    "VendorID": I64, "lpep_pickup_datetime": TS, "lpep_dropoff_datetime": TS, "store_and_fwd_flag": STR,
    "RatecodeID": F64, "PULocationID": I64, "DOLocationID": I64, "passenger_count": F64,
    "trip_distance": F64, "fare_amount": F64, "extra": F64, "mta_tax": F64, "tip_amount": F64,
    "tolls_amount": F64, "ehail_fee": NULL, "improvement_surcharge": F64, "total_amount": F64,
    "payment_type": F64, "trip_type": F64, "congestion_surcharge": F64,
}
_GREEN_B = {
    **_GREEN_A, "VendorID": I32, "store_and_fwd_flag": LSTR, "RatecodeID": I64, "PULocationID": I32,
    "DOLocationID": I32, "passenger_count": I64, "ehail_fee": F64, "payment_type": I64, "trip_type": I64,
}
_YELLOW_A = {
    "VendorID": I64, "tpep_pickup_datetime": TS, "tpep_dropoff_datetime": TS, "passenger_count": F64,
    "trip_distance": F64, "RatecodeID": F64, "store_and_fwd_flag": STR, "PULocationID": I64,
    "DOLocationID": I64, "payment_type": I64, "fare_amount": F64, "extra": F64, "mta_tax": F64,
    "tip_amount": F64, "tolls_amount": F64, "improvement_surcharge": F64, "total_amount": F64,
    "congestion_surcharge": F64, "airport_fee": F64,
}
_YELLOW_B = {
    **{k: v for k, v in _YELLOW_A.items() if k != "airport_fee"}, "VendorID": I32, "passenger_count": I64,
    "RatecodeID": I64, "store_and_fwd_flag": LSTR, "PULocationID": I32, "DOLocationID": I32, "Airport_fee": F64,
}

ERAS: dict[str, dict[str, pa.DataType]] = {
    "green_A": _GREEN_A,                                             # 2019-09 .. 2023-01
    "green_B": _GREEN_B,                                             # 2023-02 .. 2024-12
    "green_C": {**_GREEN_B, "cbd_congestion_fee": F64},              # 2025-01 ->
    "yellow_A_null_fee": {**_YELLOW_A, "airport_fee": NULL},         # 2019-01 .. 2020-07
    "yellow_A": _YELLOW_A,                                           # 2020-11 .. 2023-01
    "yellow_B": _YELLOW_B,                                           # 2023-02 .. 2024-12
    "yellow_C": {**_YELLOW_B, "cbd_congestion_fee": F64},            # 2025-01 ->
}


def _value(text: str, arrow_type: pa.DataType):
    if text == "" or pa.types.is_null(arrow_type):
        return None
    if pa.types.is_timestamp(arrow_type):
        return dt.datetime.fromisoformat(text)
    if pa.types.is_integer(arrow_type):
        return int(float(text))
    if pa.types.is_floating(arrow_type):
        return float(text)
    return text


def write_era(path: Path, era: str, header: list[str], rows: list[list[str]], extra: dict | None = None) -> Path:
    """`rows` (CSV text under `header`) as a Parquet file of `era`'s columns and types. A column
    the CSV lacks (airport_fee, cbd_congestion_fee) gets `extra[name]` or NULL; `extra` may also
    add columns of its own (e.g. one the colour does not know)."""
    extra = extra or {}
    columns, fields = {}, []
    for name, arrow_type in ERAS[era].items():
        source = {"Airport_fee": "airport_fee"}.get(name, name)
        if source in header:
            i = header.index(source)
            values = [_value(row[i], arrow_type) for row in rows]
        else:
            values = [None if pa.types.is_null(arrow_type) else extra.get(source) for _ in rows]
        columns[name] = pa.array(values, arrow_type)
        fields.append(pa.field(name, arrow_type))
    for name, value in extra.items():
        if name not in columns and name not in ("airport_fee", "cbd_congestion_fee"):
            columns[name] = pa.array([value] * len(rows), pa.string())
            fields.append(pa.field(name, pa.string()))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=pa.schema(fields)), path, compression="zstd")
    return path


def independent_parquet_ids(colour, path: Path, file_name: str) -> list[str]:
    """The ids a Parquet file's rows must get, worked out here from the README's definition with
    nothing of the code under test but the colour's column list: each value's text by its Python
    type (pyarrow's own values), MD5 of file name + texts joined by 0x1F, read as a little-endian
    128-bit number and shown in 32 hex digits; the k-th copy is MD5(hex of the first, k)."""
    import collections
    import decimal
    import hashlib

    table = pq.read_table(path)
    present = set(table.column_names)

    def text(logical: str, value) -> str:
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, float) and logical != "NUMERIC":  # a code stored as a double
            assert value == int(value), value
            return str(int(value))
        if logical == "NUMERIC":
            number = decimal.Decimal(value).quantize(decimal.Decimal("0.000000001"), rounding=decimal.ROUND_HALF_UP)
            digits = format(number + 0, "f").rstrip("0").rstrip(".")
            return digits or "0"
        return str(value)

    columns = []
    for column in colour.columns:
        name = next((n for n in column.names if n in present), None)
        values = table.column(name).to_pylist() if name else [None] * table.num_rows
        columns.append([text(column.type.value, v) for v in values])

    def number_hex(*parts: str) -> str:
        return format(int.from_bytes(hashlib.md5("\x1f".join(parts).encode()).digest(), "little"), "032x")

    seen: collections.Counter = collections.Counter()
    ids = []
    for row in zip(*columns, strict=True):
        seen[row] += 1
        first = number_hex(file_name, *row)
        ids.append(first if seen[row] == 1 else number_hex(first, str(seen[row])))
    return ids
