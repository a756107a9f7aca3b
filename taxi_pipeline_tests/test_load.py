"""Loading real months through the real assets: a real DuckDB file, a loopback HTTP mirror."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import hashlib

import duckdb
import pytest

from taxi_pipeline.lib.colours import GREEN, YELLOW, LogicalType
from taxi_pipeline.lib.raw_file import RawFile
from taxi_pipeline.lib.rowid import from_hex_digest, hex_id
from taxi_pipeline.lib.sources.base import InvalidFileError
from taxi_pipeline.lib.warehouses.duckdb import admin as duckdb_admin
from taxi_pipeline.lib.warehouses.duckdb import sql as duckdb_sql
from taxi_pipeline.lib.warehouses.duckdb.admin import check_main_table
from taxi_pipeline.lib.warehouses.duckdb.warehouse import DuckDBWarehouse
from taxi_pipeline.lib.warehouses.shape import AdoptError, ForeignTableError
from taxi_pipeline_tests.helpers.support import (
    MIRROR,
    copy_mirror,
    load_month,
    make_resources,
    month_ids,
    query,
    read_csv_gz,
    reference_ids,
    write_csv_gz,
)

GREEN_2020_04 = ("2020-04-01", "green_tripdata_2020-04.csv", 35_612)
GREEN_2020_10 = ("2020-10-01", "green_tripdata_2020-10.csv", 95_120)


def _materializations(result):
    return {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}


def test_two_green_months_land_exactly_once_and_a_rerun_adds_nothing(resources, taxi_home):
    for partition, _file_name, rows in (GREEN_2020_04, GREEN_2020_10):
        result = load_month(GREEN, partition, resources)
        assert result.success
        meta = _materializations(result)
        assert meta["green_raw_file"]["dagster/row_count"].value == rows
        assert meta["green_tripdata"]["dagster/row_count"].value == rows
        assert meta["green_tripdata"]["inserted"].value == rows
        assert meta["green_staging"]["reused"].value is False
        [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "month_matches_source"]
        assert check.passed and check.metadata["table_rows"].value == rows
    counts = dict(query(taxi_home, "SELECT filename, count(*) FROM zoomcamp.green_tripdata GROUP BY 1"))
    assert counts == {"green_tripdata_2020-04.csv": 35_612, "green_tripdata_2020-10.csv": 95_120}

    for partition, _, _ in (GREEN_2020_04, GREEN_2020_10):
        again = load_month(GREEN, partition, resources)
        assert _materializations(again)["green_staging"]["reused"].value is True  # same bytes, same code
        assert _materializations(again)["green_tripdata"]["inserted"].value == 0
        assert _materializations(again)["green_tripdata"]["deleted"].value == 0
    assert query(taxi_home, "SELECT count(*), count(DISTINCT unique_row_id) FROM zoomcamp.green_tripdata") == [
        (130_732, 130_732)
    ]


def test_ids_match_the_reference_and_keep_rows_kestras_key_collapses(resources, taxi_home):
    partition, file_name, rows = GREEN_2020_10
    load_month(GREEN, partition, resources)
    expected = reference_ids(file_name, MIRROR / "green" / f"{file_name}.gz")
    assert collections.Counter(month_ids(taxi_home, GREEN, file_name)) == collections.Counter(expected)
    # Kestra's key (VendorID, pickup, dropoff, PU, DO) maps several of these rows to one id.
    [(kestra_keys,)] = query(taxi_home, """
        SELECT count(DISTINCT (VendorID, lpep_pickup_datetime, lpep_dropoff_datetime, PULocationID, DOLocationID))
        FROM zoomcamp.green_tripdata""")
    assert kestra_keys == 94_945 and len(set(expected)) == rows


def test_a_changed_file_replaces_its_month_and_leaves_others_alone(tmp_path, taxi_home, http_mirror):
    mirror = copy_mirror(tmp_path / "mirror")
    resources = make_resources(taxi_home, mirror.as_uri())
    for partition, _, _ in (GREEN_2020_04, GREEN_2020_10):
        load_month(GREEN, partition, resources)
    october_before = sorted(month_ids(taxi_home, GREEN, GREEN_2020_10[1]))

    path = mirror / "green" / "green_tripdata_2020-04.csv.gz"
    header, original = read_csv_gz(path)
    rows = [list(r) for r in original]
    del rows[100:400]                      # 300 rows withdrawn
    rows[5][header.index("fare_amount")] = "123.45"   # one value corrected
    # Each version exercises one way through the merge: changed rows, rows only added back (nothing
    # vanished), rows only withdrawn (nothing new).
    for version, expected in ((rows, (1, 301)), (rows + original[100:400], (300, 0)), (rows[:-10], (0, 310))):
        write_csv_gz(path, header, version)
        materialized = _materializations(load_month(GREEN, GREEN_2020_04[0], resources))
        meta = materialized["green_tripdata"]
        assert materialized["green_staging"]["reused"].value is False
        assert (meta["inserted"].value, meta["deleted"].value) == expected
        april = month_ids(taxi_home, GREEN, GREEN_2020_04[1])
        assert sorted(april) == sorted(reference_ids(GREEN_2020_04[1], path)) and len(april) == len(version)
        assert sorted(month_ids(taxi_home, GREEN, GREEN_2020_10[1])) == october_before
    assert query(taxi_home, "SELECT count(*) FROM zoomcamp.green_tripdata WHERE fare_amount = 123.45") == [(1,)]


def test_a_staging_table_is_kept_only_when_built_from_the_same_bytes_by_the_same_code(tmp_path, monkeypatch):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb", "zoomcamp")
    path = MIRROR / "green" / "green_tripdata_2020-04.csv.gz"
    april, md5 = dt.date(2020, 4, 1), hashlib.md5(path.read_bytes()).hexdigest()

    def reused(source_md5):
        result = warehouse.stage(GREEN, april, RawFile(str(path), "green_tripdata_2020-04.csv", "csv", source_md5))
        assert result.rows == 35_612
        return result.reused

    assert [reused(md5), reused(md5)] == [False, True]
    assert [reused("0" * 32), reused(md5), reused(None), reused(md5), reused(md5)] == [False] * 4 + [True]
    numbering = duckdb_sql.number_identical_rows
    monkeypatch.setattr(duckdb_sql, "number_identical_rows", lambda *args: numbering(*args) + " ")  # new code
    assert [reused(md5), reused(md5)] == [False, True]


@pytest.mark.parametrize(
    ("colour", "partition", "file_name", "rows"),
    [
        (YELLOW, "2021-01-01", "yellow_tripdata_2021-01.csv", 22_792),
        (YELLOW, "2020-07-01", "yellow_tripdata_2020-07.csv", 266),  # LF, no final newline
        (GREEN, "2019-10-01", "green_tripdata_2019-10.csv", 1_308),
    ],
)
def test_tables_hold_the_source_values_field_by_field(resources, taxi_home, colour, partition, file_name, rows):
    assert load_month(colour, partition, resources).success
    assert [r[0] for r in query(taxi_home, f"DESCRIBE zoomcamp.{colour.main_table}")] == [
        "unique_row_id", "filename", *(c.name for c in colour.columns)
    ]
    header, source_rows = read_csv_gz(MIRROR / colour.name / f"{file_name}.gz")
    assert header == list(colour.header) and len(source_rows) == rows
    ids = reference_ids(file_name, MIRROR / colour.name / f"{file_name}.gz")
    # Every 97th row, and the last: compare each field with the CSV text, typed.
    sample = {ids[i]: source_rows[i] for i in [*range(0, rows, 97), rows - 1]}
    placeholders = ",".join("?" * len(sample))
    table_rows = query(
        taxi_home,
        f"SELECT printf('%032x', unique_row_id), filename, * EXCLUDE (unique_row_id, filename) "
        f"FROM zoomcamp.{colour.main_table} WHERE printf('%032x', unique_row_id) IN ({placeholders})",
        list(sample),
    )
    assert len(table_rows) == len(sample)
    for row_id, filename, *values in table_rows:
        assert filename == file_name
        by_column = dict(zip((c.name for c in colour.columns), values, strict=True))
        for column, text in zip(colour.csv_columns, sample[row_id], strict=True):
            assert by_column[column.name] == _typed(column.type, text), (row_id, column.name)
        # The TLC's later columns: a CSV month has no value for them.
        assert all(by_column[c.name] is None for c in colour.columns if not c.in_csv)


def _typed(logical: LogicalType, text: str):
    if text == "":
        return None
    if logical is LogicalType.TIMESTAMP:
        return dt.datetime.fromisoformat(text)
    if logical is LogicalType.INTEGER:
        return int(text)
    if logical is LogicalType.NUMERIC:
        return decimal.Decimal(text)
    return text


def test_identical_rows_keep_their_multiplicity(tmp_path, taxi_home):
    """Real rows, one of them three times and another twice: 5 rows, 5 ids, as the reference says."""
    header, rows = read_csv_gz(MIRROR / "green" / "green_tripdata_2019-01.csv.gz")
    rows = rows[:10] + [rows[3], rows[3], rows[7]]
    path = write_csv_gz(tmp_path / "mirror" / "green" / "green_tripdata_2019-01.csv.gz", header, rows)
    resources = make_resources(taxi_home, (tmp_path / "mirror").as_uri())
    for _ in range(2):
        assert load_month(GREEN, "2019-01-01", resources).success
        ids = month_ids(taxi_home, GREEN, "green_tripdata_2019-01.csv")
        assert len(ids) == len(set(ids)) == 13
        assert sorted(ids) == sorted(reference_ids("green_tripdata_2019-01.csv", path))


@pytest.mark.parametrize("layout", ["one table per month, hex ids", "one table for every month, hex ids"])
def test_tables_of_the_earlier_layouts_are_refused_then_adopted_once_keeping_every_row(tmp_path, taxi_home, layout):
    """A warehouse the earlier code wrote (ids in 32 hex digits; before that, every month in one
    main table beside a second copy in its staging table) is refused by the next load before it
    writes, with the way out; `adopt` converts it once: every row kept with its values, every id
    the same MD5 as a 16-byte number. The steps themselves convert nothing."""
    resources = make_resources(taxi_home, MIRROR.as_uri())
    assert load_month(GREEN, "2019-01-01", resources).success
    assert load_month(GREEN, GREEN_2020_04[0], resources).success
    main = "zoomcamp.green_tripdata"
    rows = f"SELECT printf('%032x', unique_row_id), filename, trip_distance FROM {main}"
    before = collections.Counter(query(taxi_home, rows))
    months = ["green_tripdata_2019_01", "green_tripdata_2020_04"]
    with duckdb.connect(str(taxi_home / "warehouse.duckdb")) as con:
        # Back to the earlier ids: the digest's hex (`rowid.from_hex_digest` reversed).
        to_digest_hex = "regexp_replace(reverse(printf('%032x', unique_row_id)), '(.)(.)', '\\2\\1', 'g')"
        for name in months:
            con.execute(f"ALTER TABLE zoomcamp.{name} ALTER unique_row_id TYPE VARCHAR USING {to_digest_hex}")
        earlier_view = duckdb_sql.create_main_view("zoomcamp", GREEN, months).replace(
            "CAST(NULL AS UHUGEINT) AS unique_row_id", "CAST(NULL AS VARCHAR) AS unique_row_id")
        con.execute(earlier_view)
        if layout == "one table for every month, hex ids":
            con.execute(f"CREATE TABLE {main}__all AS SELECT * FROM {main}")
            con.execute(f"DROP VIEW {main}")
            con.execute(f"ALTER TABLE {main}__all RENAME TO green_tripdata")
            # Its staging tables held a second copy of each month, under today's month-table names.
            con.execute("DELETE FROM zoomcamp.green_tripdata_2020_04 WHERE trip_distance > 1")
        digests = collections.Counter(con.execute(
            f"SELECT unique_row_id, filename, trip_distance FROM {main}").fetchall())
    assert sum(digests.values()) == 99 + 35_612
    assert collections.Counter({(hex_id(from_hex_digest(i)), f, d): n for (i, f, d), n in digests.items()}) == before

    refused = load_month(GREEN, "2019-10-01", resources, raise_on_error=False)
    assert not refused.success
    with duckdb.connect(str(taxi_home / "warehouse.duckdb")) as con:
        with pytest.raises(ForeignTableError) as foreign:
            check_main_table(con, "zoomcamp", GREEN)
        assert "  - column unique_row_id is VARCHAR, expected UHUGEINT" in str(foreign.value)
        assert "this project's earlier layout" in str(foreign.value)
        assert "python -m taxi_pipeline adopt green" in str(foreign.value)
        assert ("  - a table holding every month" in str(foreign.value)) == (layout == "one table for every month, hex ids")
        assert collections.Counter(con.execute(f"SELECT unique_row_id, filename, trip_distance FROM {main}").fetchall()) == digests
        if layout == "one table for every month, hex ids":
            # A table named like a month table that holds a month the main table does not: its rows
            # would be lost, so adopt refuses and changes nothing.
            con.execute("CREATE TABLE zoomcamp.green_tripdata_2019_05 AS SELECT * FROM zoomcamp.green_tripdata LIMIT 3")
            with pytest.raises(AdoptError, match="green_tripdata_2019_05 holds 3 rows of a month"):
                duckdb_admin.adopt(con, "zoomcamp", GREEN)
            con.execute("DROP TABLE zoomcamp.green_tripdata_2019_05")
            assert collections.Counter(con.execute(f"SELECT unique_row_id, filename, trip_distance FROM {main}").fetchall()) == digests
        adopted = duckdb_admin.adopt(con, "zoomcamp", GREEN)
        assert duckdb_admin.adopt(con, "zoomcamp", GREEN).changes == ()  # once: now this project's layout
    assert "unique_row_id: VARCHAR -> UHUGEINT (the same MD5, as this project's 16-byte id)" in adopted.changes
    assert "one table per month (2) under the view zoomcamp.green_tripdata" in adopted.changes
    assert [c.split(" (")[0] for c in adopted.changes if c.endswith("replaced by the main table's rows of its month")] == [
        "zoomcamp.green_tripdata_2019_01", "zoomcamp.green_tripdata_2020_04"]
    assert collections.Counter(query(taxi_home, rows)) == before

    assert load_month(GREEN, "2019-10-01", resources).success
    after = collections.Counter(query(taxi_home, rows))
    october = collections.Counter(
        (i, f, d) for i, f, d in after.elements() if f == "green_tripdata_2019-10.csv")
    assert after - october == before
    assert sorted(month_ids(taxi_home, GREEN, "green_tripdata_2019-10.csv")) == sorted(
        reference_ids("green_tripdata_2019-10.csv", MIRROR / "green" / "green_tripdata_2019-10.csv.gz"))
    assert dict(query(taxi_home, "SELECT table_name, table_type FROM information_schema.tables")) == {
        "green_tripdata": "VIEW", **{name: "BASE TABLE" for name in [*months, "green_tripdata_2019_10"]}}
    assert query(taxi_home, "SELECT DISTINCT data_type FROM information_schema.columns "
                            "WHERE column_name = 'unique_row_id'") == [("UHUGEINT",)]
    assert load_month(GREEN, GREEN_2020_04[0], resources).success  # a re-run: the month's ids now as loaded
    assert sorted(month_ids(taxi_home, GREEN, GREEN_2020_04[1])) == sorted(
        reference_ids(GREEN_2020_04[1], MIRROR / "green" / f"{GREEN_2020_04[1]}.gz"))


@pytest.mark.parametrize(("column", "value"), [("payment_type", "1.5"), ("passenger_count", "1e3"), ("payment_type", "0x10")])
def test_an_integer_field_that_is_not_integer_text_fails_staging_naming_file_line_column_and_value(tmp_path, column, value):
    """Real green rows, one INTEGER field replaced at line 5001 (DuckDB's cast alone reads '1.5'
    as 2, '1e3' as 1000, '0x10' as 16); other integer spellings ('+1', '07') still load."""
    header, rows = read_csv_gz(MIRROR / "green" / "green_tripdata_2020-10.csv.gz")
    rows = [list(r) for r in rows[:6000]]
    rows[10][header.index("passenger_count")], rows[11][header.index("payment_type")] = "+1", "07"
    path = write_csv_gz(tmp_path / "green_tripdata_2020-10.csv.gz", header, rows)
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb", "zoomcamp")
    raw = RawFile(str(path), "green_tripdata_2020-10.csv", "csv")
    october = dt.date(2020, 10, 1)
    assert warehouse.stage(GREEN, october, raw).rows == 6000
    rows[4999][header.index(column)] = value  # line 5001: the header is line 1
    write_csv_gz(path, header, rows)
    with pytest.raises(InvalidFileError) as failed:
        warehouse.stage(GREEN, october, raw)
    assert str(failed.value) == f"green_tripdata_2020-10.csv, line 5001: column {column}: '{value}' is not a valid INTEGER"
