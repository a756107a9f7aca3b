"""Every BigQuery statement a month's load sends, executed by ZetaSQL (Google's GoogleSQL reference
implementation, `zetasql_engine.py`) over real rows of each era: release CSV green and yellow, TLC
Parquet green eras A, B, C (real files, cut to a few dozen rows with their NULL codes), yellow
eras A..C built from real yellow rows (`parquet_eras.py`).

Each month is loaded twice: by the embedded DuckDB target, and by the GCP target against the
emulators, whose proxy records the statements the pipeline really sends. Those are replayed on
ZetaSQL (`zetasql_replay.py`); the ids and typed values it stages must equal DuckDB's and the
ids `rowid.py` gives. Starts fake-gcs-server and local-bigquery; the WebAssembly engine is one per
session.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from zetasql.core.exceptions import ServerError

from taxi_pipeline.lib.colours import GREEN, YELLOW, Colour
from taxi_pipeline.lib.rowid import canonical_text, row_ids, typed_value
from taxi_pipeline.lib.sources.parquet import type_kind
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.parquet_eras import independent_parquet_ids, write_era
from taxi_pipeline_tests.helpers.support import (
    MIRROR,
    TLC,
    load_month,
    make_resources,
    query,
    read_csv_gz,
    reference_ids,
    write_csv_gz,
)
from taxi_pipeline_tests.helpers.zetasql_engine import Table, ZetaSQL
from taxi_pipeline_tests.helpers.zetasql_replay import Replay, raw_from_csv, raw_from_parquet, recorded_jobs
from taxi_pipeline_tests.test_gcp import gcp_resources, names  # noqa: F401 (the fixture)

pytestmark = pytest.mark.zetasql


@pytest.fixture(scope="session")
def zetasql(request, tmp_path_factory) -> ZetaSQL:
    cache = getattr(request.config, "cache", None)
    return ZetaSQL(Path(cache.mkdir("zetasql")) if cache else tmp_path_factory.mktemp("zetasql"))


@dataclass(frozen=True)
class Era:
    colour: Colour
    month: str
    source: str  # "csv", "tlc" (a real TLC file, cut), or a `parquet_eras` era name

    @property
    def file_name(self) -> str:
        return f"{self.colour.name}_tripdata_{self.month}.{'csv' if self.source == 'csv' else 'parquet'}"

    def write(self, folder: Path) -> Path:
        """The month's file in a release or TLC layout under `folder`: a few dozen real rows,
        with NULL codes and a row repeated (identical rows get numbered ids)."""
        if self.source == "tlc":
            table = pq.read_table(TLC / self.file_name)
            nulls = table.column("RatecodeID").is_null().to_pylist()
            picked = list(range(25)) + [i for i, null in enumerate(nulls) if null][:8] + [1, 1]
            path = folder / "tlc" / self.file_name
            path.parent.mkdir(parents=True)
            pq.write_table(table.take(picked), path)
            return path
        source = {"green": "green_tripdata_2019-01", "yellow": "yellow_tripdata_2020-01"}[self.colour.name]
        header, rows = read_csv_gz(MIRROR / self.colour.name / f"{source}.csv.gz")
        rows = rows[:25] + rows[499:507] + [rows[2], rows[2]]  # yellow 2020-01 lacks codes from row 499
        if self.source == "csv":
            return write_csv_gz(folder / "mirror" / self.colour.name / f"{self.file_name}.gz", header, rows)
        return write_era(folder / "tlc" / self.file_name, self.source, header, rows,
                         {"airport_fee": 1.25, "cbd_congestion_fee": 0.75})

    def raw(self, path: Path, name: str) -> Table:
        if self.source == "csv":
            return raw_from_csv(name, self.colour, read_csv_gz(path)[1])
        return raw_from_parquet(name, path)


ERAS = {
    "release_csv_green": Era(GREEN, "2019-01", "csv"),
    "release_csv_yellow": Era(YELLOW, "2020-01", "csv"),
    "tlc_green_A": Era(GREEN, "2022-01", "tlc"),
    "tlc_green_B": Era(GREEN, "2023-02", "tlc"),
    "tlc_green_C": Era(GREEN, "2025-01", "tlc"),
    "yellow_A_null_fee": Era(YELLOW, "2020-05", "yellow_A_null_fee"),
    "yellow_A": Era(YELLOW, "2022-06", "yellow_A"),
    "yellow_B": Era(YELLOW, "2023-06", "yellow_B"),
    "yellow_C": Era(YELLOW, "2025-02", "yellow_C"),
}


def _normal(value):
    if isinstance(value, decimal.Decimal):
        return value.normalize()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _by_id(rows) -> dict[str, tuple]:
    return {row[0]: tuple(_normal(v) for v in row[1:]) for row in rows}


@pytest.mark.parametrize("era", list(ERAS.values()), ids=list(ERAS))
def test_zetasql_runs_the_statements_the_pipeline_sends_and_stages_duckdbs_ids_and_values(
        era, zetasql, gcp_emulators, bq_proxy, tmp_path, names):  # noqa: F811
    path = era.write(tmp_path)
    mirror, tlc = (tmp_path / "mirror").as_uri(), (tmp_path / "tlc").as_uri()
    mode = "release" if era.source == "csv" else "tlc"
    key = f"{era.month}-01"
    assert load_month(era.colour, key, make_resources(tmp_path / "local", mirror, tlc, mode=mode)).success
    columns = ", ".join(["filename", *(c.name for c in era.colour.columns)])
    local = _by_id(query(tmp_path / "local", f"SELECT printf('%032x', unique_row_id), {columns} "
                                             f"FROM zoomcamp.{era.colour.main_table}"))

    start = len(bq_proxy.since(0))
    result = load_month(era.colour, key, gcp_resources(mirror, **names, tlc_url=tlc, mode=mode))
    assert result.success
    dataset = f"{PROJECT}.{names['dataset']}"
    month = dt.date.fromisoformat(key)
    # The staging table is named after the file's MD5 (`bigquery.warehouse.staged_table`).
    staging = f"{dataset}.{era.colour.month_table(month)}__{hashlib.md5(path.read_bytes()).hexdigest()[:16]}"
    raw = era.raw(path, f"{staging}__raw")
    replay = Replay(zetasql, era.colour, dataset, raw)
    jobs = recorded_jobs(bq_proxy.since(start))
    for job in jobs:
        try:
            replay.run(job)
        except ServerError as exc:
            pytest.fail(f"ZetaSQL refuses a statement the pipeline sent: {exc}\n{job.statement}", pytrace=False)

    staged = replay.tables[staging]
    cloud = _by_id([[row[0].hex(), *row[1:-1]] for row in staged.rows])
    assert cloud == local
    assert {row[-1] for row in staged.rows} == {month}
    if era.source == "csv":
        expected = reference_ids(era.file_name, path)
    else:
        expected = _rowid_parquet_ids(era.colour, path, era.file_name)
        assert sorted(expected) == sorted(independent_parquet_ids(era.colour, path, era.file_name))
    assert sorted(cloud) == sorted(expected) and len(staged.rows) == len(expected)  # ids are distinct
    n = len(staged.rows)
    assert [[n, n]] in [rows for _, rows in replay.answers]  # the check's rows and distinct ids, after the MERGE
    main = replay.tables[f"{dataset}.{era.colour.main_table}"]
    assert sorted(row[0] for row in main.rows) == sorted(row[0] for row in staged.rows)
    _merge_replaces_exactly_the_month(replay, jobs, staged, month)


def _rowid_parquet_ids(colour: Colour, path: Path, file_name: str) -> list[str]:
    """The ids `rowid.py` gives a Parquet file's rows, from pyarrow's values."""
    table = pq.read_table(path)
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    columns = []
    for column in colour.columns:
        found = next((n for n in column.names if n in types), None)
        kind = type_kind(types[found]) if found else "missing"
        values = table.column(found).to_pylist() if found else [None] * table.num_rows
        columns.append([canonical_text(column.type, typed_value(column.type, kind, v)) for v in values])
    return list(row_ids(file_name, zip(*columns, strict=True)))


def _merge_replaces_exactly_the_month(replay: Replay, jobs, staged: Table, month: dt.date) -> None:
    """The recorded MERGE over a main table that lacks 3 of the staged rows, holds 2 rows of the
    month the file no longer has, and a row of another month: it inserts the 3, deletes the 2."""
    [merge] = [j for j in jobs if j.statement.startswith("MERGE")]
    stale = [[bytes([i]) * 16, *staged.rows[i][1:]] for i in (3, 4)]
    other = [*staged.rows[5][:-1], dt.date(2018, 1, 1)]
    replay.main().rows = staged.rows[3:] + stale + [other]
    inserted, deleted = replay.merge_changes(merge)
    assert sorted(inserted) == sorted(staged.rows[:3])
    assert sorted(r[0] for r in deleted) == sorted(r[0] for r in stale)


def test_zetasql_refuses_what_bigquery_refuses_and_the_emulator_accepts(zetasql):
    """The engine is the reference, not a stand-in: ERROR() with a NULL message raises (DuckDB's
    returns NULL), and '1.0' is no INT64 (DuckDB casts it)."""
    table = Table("p.d.t", {"x": "FLOAT64", "s": "STRING"}, [[None, "1.0"]])
    with pytest.raises(ServerError, match=r"\[OUT_OF_RANGE\] ERROR function called with NULL value"):
        zetasql.query("SELECT IF(x = TRUNC(x), CAST(x AS INT64), ERROR(CONCAT('x: ', CAST(x AS STRING)))) "
                      "FROM `p.d.t`", [table])
    with pytest.raises(ServerError, match="Bad int64 value: 1.0"):
        zetasql.query("SELECT CAST(s AS INT64) FROM `p.d.t`", [table])
