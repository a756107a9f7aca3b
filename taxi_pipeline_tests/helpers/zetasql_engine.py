"""ZetaSQL, Google's GoogleSQL reference implementation (PyPI `zetasql`, a WebAssembly build run by
wasmtime), as a second engine for the BigQuery statements: analyze (type check) any statement, and
execute a query over tables of rows given as Python values.

One engine per test session: compiling the 28 MB WebAssembly module takes 20-60 s, so the compiled
module is kept in pytest's cache folder and later sessions load it in milliseconds.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import decimal
import hashlib
import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime
from google.protobuf.timestamp_pb2 import Timestamp
from zetasql.api import Analyzer, CatalogBuilder, TableBuilder
from zetasql.core import ZetaSqlLocalService
from zetasql.core.wasm_client import WasmClient, get_tzinfo_dir
from zetasql.types import (
    AnalyzerOptions,
    EvaluateQueryRequest,
    LanguageOptions,
    Parameter,
    SimpleCatalog,
    TableContent,
    TableData,
    Type,
    TypeKind,
    Value,
    ZetaSQLBuiltinFunctionOptions,
)
from zetasql.wasi import get_wasm_path
from zetasql.wasi._pb2.zetasql.local_service import local_service_pb2

KINDS = {
    "STRING": TypeKind.TYPE_STRING, "INT64": TypeKind.TYPE_INT64, "FLOAT64": TypeKind.TYPE_DOUBLE,
    "NUMERIC": TypeKind.TYPE_NUMERIC, "TIMESTAMP": TypeKind.TYPE_TIMESTAMP, "DATE": TypeKind.TYPE_DATE,
    "BYTES": TypeKind.TYPE_BYTES, "BOOL": TypeKind.TYPE_BOOL,
}
TYPE_ALIASES = {
    **dict.fromkeys(("INT", "SMALLINT", "INTEGER", "BIGINT", "TINYINT", "BYTEINT"), TypeKind.TYPE_INT64),
    "DECIMAL": TypeKind.TYPE_NUMERIC, "BIGDECIMAL": TypeKind.TYPE_BIGNUMERIC,
}
_EPOCH = dt.date(1970, 1, 1)
_NUMERIC_SCALE = decimal.Decimal(10) ** 9


class _CachedWasmClient(WasmClient):
    """`WasmClient` as zetasql 0.1.5 builds it, with the compiled module read from `cache`."""

    def __init__(self, cache: Path):  # not calling super().__init__: super().__init__ compiles; this is its body, cached
        wasi = wasmtime.WasiConfig()
        wasi.inherit_stdout()
        wasi.inherit_stderr()
        if tzinfo := get_tzinfo_dir():
            wasi.preopen_dir(tzinfo, "/usr/share/zoneinfo")
        config = wasmtime.Config()
        config.shared_memory = True
        engine = wasmtime.Engine(config)
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasi)
        wasm = Path(get_wasm_path())
        key = hashlib.sha256(wasm.read_bytes()).hexdigest()[:16]
        compiled = cache / f"zetasql-{key}-wasmtime-{importlib.metadata.version('wasmtime')}.cwasm"
        try:  # wasmtime refuses a compiled module made for another engine or CPU
            self.module = wasmtime.Module.deserialize_file(engine, str(compiled))
        except (FileNotFoundError, wasmtime.WasmtimeError):
            self.module = wasmtime.Module.from_file(engine, str(wasm))
            compiled.write_bytes(self.module.serialize())
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.instance = linker.instantiate(self.store, self.module)
        self.exports = self.instance.exports(self.store)
        if "_initialize" in self.exports:
            self.exports["_initialize"](self.store)
        self.memory = self.exports["memory"]

    # The library copies byte by byte in Python (seconds for a table of rows); one memmove instead.
    def _base(self) -> int:
        return ctypes.cast(self.memory.data_ptr(), ctypes.c_void_p).value

    def write_bytes(self, ptr: int, data: bytes) -> None:
        ctypes.memmove(self._base() + ptr, data, len(data))

    def read_bytes(self, ptr: int, size: int) -> bytes:
        return ctypes.string_at(self._base() + ptr, size)


@dataclass
class Table:
    """A table as the statements name it (`project.dataset.table`), its columns in GoogleSQL types."""
    name: str
    columns: dict[str, str]
    rows: list[list] = field(default_factory=list)  # Python values (see `value`)


class ZetaSQL:
    def __init__(self, cache: Path):
        cache.mkdir(parents=True, exist_ok=True)
        service = ZetaSqlLocalService.__new__(ZetaSqlLocalService)
        service.wasm_client = _CachedWasmClient(cache)
        ZetaSqlLocalService._instance = service  # the library's singleton, which its API classes use
        self.service = service
        self.language = LanguageOptions.maximum_features()
        self.builtins = ZetaSQLBuiltinFunctionOptions(language_options=self.language)

    def _catalog(self, tables: list[Table]):
        builder = CatalogBuilder("bigquery")
        for t in tables:
            table = TableBuilder(t.name)
            for column, kind in t.columns.items():
                table.add_column(column, KINDS[kind])
            builder.add_table(table.build())
        catalog = builder.with_builtin_functions(self.builtins).build()
        # BigQuery's type aliases, which the reference implementation does not know by itself
        # (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#integer_types,
        # https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#decimal_types).
        for alias, kind in TYPE_ALIASES.items():
            catalog.named_type.append(SimpleCatalog.NamedType(name=alias, type=Type(type_kind=kind)))
        return catalog

    def _options(self, params: dict[str, tuple[str, object]]) -> AnalyzerOptions:
        # BigQuery's default time zone is UTC; ZetaSQL's is America/Los_Angeles
        # (https://cloud.google.com/bigquery/docs/reference/standard-sql/timestamp_functions#timezone_definitions).
        return AnalyzerOptions(language_options=self.language, default_timezone="UTC", query_parameters=[
            AnalyzerOptions.QueryParameter(name=name, type=Type(type_kind=KINDS[kind]))
            for name, (kind, _) in params.items()])

    def analyze(self, statement: str, tables: list[Table], params: dict[str, tuple[str, object]] | None = None):
        """The resolved statement; raises zetasql's ServerError with ZetaSQL's message if it refuses it."""
        return Analyzer(self._options(params or {}), self._catalog(tables)).analyze_statement(statement)

    def query(self, statement: str, tables: list[Table], params: dict[str, tuple[str, object]] | None = None):
        """Column names and rows (as Python values, see `python`) of a query, executed by the reference
        implementation."""
        params = params or {}
        request = EvaluateQueryRequest(
            sql=statement, options=self._options(params), simple_catalog=self._catalog(tables),
            table_content={t.name: _content(t) for t in tables}, params=_params(params))
        # The raw response: the library's own conversion of it drops TIMESTAMP values.
        answer = self.service.wasm_client.call_grpc_func(
            "ZetaSqlLocalService_EvaluateQuery", request.to_proto(), local_service_pb2.EvaluateQueryResponse)
        names = [c.name for c in answer.prepared.columns]
        return names, [[python(v) for v in row.cell] for row in answer.content.table_data.row]


def _params(params: dict[str, tuple[str, object]]) -> list:
    return [Parameter(name=name, value=value(kind, v)) for name, (kind, v) in params.items()]


def _content(table: Table) -> TableContent:
    kinds = list(table.columns.values())
    rows = [TableData.Row(cell=[value(k, v) for k, v in zip(kinds, row, strict=True)])
            for row in table.rows]
    return TableContent(table_data=TableData(row=rows))


def value(kind: str, v) -> Value:
    """A Python value as a ZetaSQL value of `kind` (None: NULL)."""
    if v is None:
        return Value()
    if kind == "STRING":
        return Value(string_value=v)
    if kind == "INT64":
        return Value(int64_value=int(v))
    if kind == "FLOAT64":
        return Value(double_value=float(v))
    if kind == "BOOL":
        return Value(bool_value=bool(v))
    if kind == "BYTES":
        return Value(bytes_value=v)
    if kind == "DATE":
        return Value(date_value=(v - _EPOCH).days)
    if kind == "TIMESTAMP":
        stamp = Timestamp()
        stamp.FromDatetime(v if v.tzinfo is None else v.astimezone(dt.UTC).replace(tzinfo=None))
        return Value(timestamp_value=stamp)
    if kind == "NUMERIC":  # ZetaSQL's NumericValue bytes: value * 10^9, two's complement, little-endian
        scaled = int(decimal.Decimal(v) * _NUMERIC_SCALE)
        return Value(numeric_value=scaled.to_bytes((scaled.bit_length() + 8) // 8 or 1, "little", signed=True))
    raise ValueError(f"no conversion for {kind}")


def python(v):
    """A ZetaSQL value (a raw ValueProto) as Python: str, int, float, bool, bytes, dt.date, naive UTC
    dt.datetime, Decimal; None for NULL."""
    which = v.WhichOneof("value")
    if which == "date_value":
        return _EPOCH + dt.timedelta(days=v.date_value)
    if which == "timestamp_value":
        return v.timestamp_value.ToDatetime()
    if which == "numeric_value":
        return (decimal.Decimal(int.from_bytes(v.numeric_value, "little", signed=True)) / _NUMERIC_SCALE).normalize()
    return None if which is None else getattr(v, which)
