"""The TLC's Parquet source: real green files of all three schema eras through `dagster job
execute`, yellow months built from real rows in each era's types, ids against the reference,
CSV and Parquet of the same rows, a source switch, bad files, schema drift, the sensor's ticks."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_pipeline.defs.assets import build_colour_assets
from taxi_pipeline.defs.checks import build_main_table_check, build_schema_drift_check
from taxi_pipeline.defs.jobs import build_colour_job
from taxi_pipeline.defs.sensors import build_colour_sensor
from taxi_pipeline.lib.colours import GREEN, YELLOW
from taxi_pipeline.lib.targets.local import LocalTarget
from taxi_pipeline_tests.helpers.parquet_eras import independent_parquet_ids, write_era
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import (
    MIRROR,
    TLC,
    load_month,
    make_resources,
    month_ids,
    query,
    read_csv_gz,
    table_checksum,
)

ROOT = Path(__file__).parents[1]
REAL_GREEN = {"2022-01": 62_495, "2023-02": 64_809, "2025-01": 48_326}  # eras A, B, C


@pytest.fixture(scope="module")
def tlc_mirror():
    with serve_folder(TLC) as server:
        yield server


def _execute(partition: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "taxi_pipeline.definitions",
         "-j", "green_taxi_job", "--tags", json.dumps({"dagster/partition": partition})],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0 and "RUN_SUCCESS" in done.stdout + done.stderr, done.stdout[-3000:] + done.stderr[-3000:]


def test_real_tlc_months_of_three_eras_load_exactly_beside_a_csv_month(tmp_path, http_mirror, tlc_mirror):
    home = tmp_path / "home"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "TAXI_HOME": str(home),
           "TAXI_SOURCE_URL": http_mirror.url, "TAXI_TLC_URL": tlc_mirror.url}
    (tmp_path / "dagster").mkdir()
    _execute("2020-04-01", env)
    april = set(month_ids(home, GREEN, "green_tripdata_2020-04.csv"))
    for month in REAL_GREEN:
        _execute(f"{month}-01", env)
    counts_sql = """SELECT filename, count(*), count(DISTINCT unique_row_id), count(cbd_congestion_fee)
                    FROM zoomcamp.green_tripdata GROUP BY 1"""
    expected = {("green_tripdata_2020-04.csv", 35_612, 35_612, 0)} | {
        (f"green_tripdata_{m}.parquet", rows, rows, 46_490 if m == "2025-01" else 0) for m, rows in REAL_GREEN.items()
    }
    assert set(query(home, counts_sql)) == expected
    before = table_checksum(home, GREEN)
    _execute("2023-02-01", env)  # a re-run adds nothing
    assert table_checksum(home, GREEN) == before
    assert set(month_ids(home, GREEN, "green_tripdata_2020-04.csv")) == april  # the CSV month, untouched

    # One representation whatever the file held: codes as integer text, counts as integers.
    for column in ("RatecodeID", "payment_type", "passenger_count", "trip_type", "VendorID", "PULocationID"):
        values = {v for (v,) in query(home, f'SELECT DISTINCT "{column}"::VARCHAR FROM zoomcamp.green_tripdata')}
        assert all(v is None or v.isdigit() for v in values), (column, sorted(v for v in values if v)[:5])
    by_file = dict(query(home, """SELECT filename, list(DISTINCT RatecodeID ORDER BY RatecodeID)
        FILTER (WHERE RatecodeID IN ('1', '5')) FROM zoomcamp.green_tripdata GROUP BY 1"""))
    assert all(codes == ["1", "5"] for codes in by_file.values()), by_file
    types = dict(query(home, "SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'green_tripdata'"))
    assert (types["RatecodeID"], types["passenger_count"], types["payment_type"], types["fare_amount"]) == (
        "VARCHAR", "BIGINT", "BIGINT", "DECIMAL(38,9)")


@pytest.mark.parametrize("month", ["2022-01", "2025-01"])
def test_parquet_ids_match_the_reference(tmp_path, month):
    home = tmp_path / "home"
    assert load_month(GREEN, f"{month}-01", make_resources(home, MIRROR.as_uri())).success
    file_name = f"green_tripdata_{month}.parquet"
    expected = independent_parquet_ids(GREEN, TLC / file_name, file_name)
    assert collections.Counter(month_ids(home, GREEN, file_name)) == collections.Counter(expected)
    assert len(set(expected)) == REAL_GREEN[month]


def _all_values(home: Path, colour) -> list[tuple]:
    return query(home, f"SELECT * EXCLUDE (unique_row_id, filename) FROM zoomcamp.{colour.main_table} ORDER BY ALL")


@pytest.mark.parametrize(
    ("colour", "month", "eras"),
    [(GREEN, "2019-10", ["green_A", "green_B", "green_C"]),
     (YELLOW, "2020-07", ["yellow_A_null_fee", "yellow_A", "yellow_B", "yellow_C"])],
)
def test_the_same_real_rows_from_csv_and_from_parquet_of_each_era_land_as_the_same_values(tmp_path, colour, month, eras):
    csv_path = MIRROR / colour.name / f"{colour.name}_tripdata_{month}.csv.gz"
    header, rows = read_csv_gz(csv_path)
    as_csv = tmp_path / "csv"
    assert load_month(colour, f"{month}-01", make_resources(as_csv, MIRROR.as_uri(), mode="release")).success
    expected = _all_values(as_csv, colour)
    assert len(expected) == len(rows)
    for era in eras:
        mirror = tmp_path / f"tlc_{era}"
        write_era(mirror / f"{colour.name}_tripdata_{month}.parquet", era, header, rows)
        home = tmp_path / era
        assert load_month(colour, f"{month}-01", make_resources(home, MIRROR.as_uri(), mirror.as_uri(), mode="tlc")).success
        assert _all_values(home, colour) == expected, era
        name = f"{colour.name}_tripdata_{month}.parquet"
        assert sorted(month_ids(home, colour, name)) == sorted(independent_parquet_ids(colour, mirror / name, name)), era


def test_yellow_parquet_months_of_every_era_load_with_airport_fee_spelled_either_way(tmp_path):
    header, rows = read_csv_gz(MIRROR / "yellow" / "yellow_tripdata_2021-01.csv.gz")
    mirror = tmp_path / "tlc"
    months = {  # month: (era, airport_fee, cbd_congestion_fee)
        "2020-05": ("yellow_A_null_fee", None, None), "2022-06": ("yellow_A", 1.25, None),
        "2023-06": ("yellow_B", 1.75, None), "2025-02": ("yellow_C", 1.75, 0.75),
    }
    for i, (month, (era, airport, cbd)) in enumerate(months.items()):
        write_era(mirror / f"yellow_tripdata_{month}.parquet", era, header, rows[i * 5000 : i * 5000 + 4000],
                  {"airport_fee": airport, "cbd_congestion_fee": cbd})
    home = tmp_path / "home"
    resources = make_resources(home, MIRROR.as_uri(), mirror.as_uri(), mode="tlc")
    for month in months:
        assert load_month(YELLOW, f"{month}-01", resources).success
    found = query(home, """SELECT filename, count(*), count(DISTINCT unique_row_id), min(airport_fee),
        min(cbd_congestion_fee), count(passenger_count) FILTER (WHERE passenger_count::VARCHAR LIKE '%.%')
        FROM zoomcamp.yellow_tripdata GROUP BY 1 ORDER BY 1""")
    assert [(f, n, d, a if a is None else float(a), c if c is None else float(c), p) for f, n, d, a, c, p in found] == [
        (f"yellow_tripdata_{m}.parquet", 4000, 4000, airport, cbd, 0) for m, (_, airport, cbd) in months.items()
    ]
    for month in months:  # every era's ids, against a reference that shares no code with the pipeline
        name = f"yellow_tripdata_{month}.parquet"
        assert collections.Counter(month_ids(home, YELLOW, name)) == collections.Counter(
            independent_parquet_ids(YELLOW, mirror / name, name)), month


def test_switching_a_months_source_replaces_it_exactly(tmp_path):
    header, rows = read_csv_gz(MIRROR / "green" / "green_tripdata_2019-10.csv.gz")
    mirror = tmp_path / "tlc"
    write_era(mirror / "green_tripdata_2019-10.parquet", "green_A", header, rows[50:])  # the TLC's own version
    home = tmp_path / "home"
    count = "SELECT filename, count(*) FROM zoomcamp.green_tripdata GROUP BY 1"
    for mode, expected in (("auto", {"green_tripdata_2019-10.csv": 1_308}),
                           ("tlc", {"green_tripdata_2019-10.parquet": 1_258}),
                           ("release", {"green_tripdata_2019-10.csv": 1_308})):
        result = load_month(GREEN, "2019-10-01", make_resources(home, MIRROR.as_uri(), mirror.as_uri(), mode=mode))
        assert result.success
        assert dict(query(home, count)) == expected, mode
        [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "month_matches_source"]
        assert check.passed
    assert len(set(month_ids(home, GREEN, "green_tripdata_2019-10.csv"))) == 1_308


def test_release_mode_fails_at_once_for_a_month_it_cannot_serve(tmp_path):
    result = load_month(GREEN, "2022-01-01", make_resources(tmp_path, MIRROR.as_uri(), mode="release"),
                        raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "TAXI_SOURCE=release serves only 2019-01..2021-07" in str(failure.step_failure_data.error)


# --- bad Parquet inputs ---------------------------------------------------------------------------

FILE = "green_tripdata_2025-01.parquet"
REAL = TLC / FILE


def _with_column(name: str) -> bytes:
    """The real file with one more column the colour does not know, as the TLC's 2026 files have."""
    table = pq.read_table(REAL)
    table = table.append_column(name, pa.array(["HV0003"] * table.num_rows, pa.string()))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


# Bad Parquet files (every check, the failed step, table and bucket): `test_bad_input.py`.


def test_a_column_the_colour_does_not_know_loads_and_the_drift_check_warns(tmp_path):
    mirror = tmp_path / "tlc"
    mirror.mkdir()
    (mirror / FILE).write_bytes(_with_column("request_source"))
    result = load_month(GREEN, "2025-01-01", make_resources(tmp_path / "home", MIRROR.as_uri(), mirror.as_uri()))
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["month_matches_source"].passed
    drift = checks["schema_known"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert drift.metadata["unknown_columns"].value == "request_source"
    [raw] = [e for e in result.get_asset_materialization_events() if e.step_key == "green_raw_file"]
    assert raw.materialization.metadata["unknown_columns"].value == "request_source"
    assert query(tmp_path / "home", "SELECT count(*) FROM zoomcamp.green_tripdata") == [(48_326,)]


# --- the publication sensor, tick by tick -----------------------------------------------------------

def _recent(months_back: int) -> dt.date:
    month = dt.datetime.now(dt.UTC).date().replace(day=1)
    for _ in range(months_back):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


def test_the_sensor_launches_new_and_changed_months_and_leaves_loaded_ones(tmp_path):
    month = _recent(4)  # inside the sensor's look-back, outside the schedule's
    key, name = f"{month:%Y-%m-%d}", f"green_tripdata_{month:%Y-%m}.parquet"
    mirror = tmp_path / "tlc"
    mirror.mkdir()
    resources = make_resources(tmp_path / "home", MIRROR.as_uri(), mirror.as_uri())
    job = build_colour_job(GREEN)
    sensor = build_colour_sensor(GREEN, job)
    definitions = dg.Definitions(
        assets=build_colour_assets(GREEN, LocalTarget), jobs=[job], sensors=[sensor], resources=resources,
        asset_checks=[build_main_table_check(GREEN), build_schema_drift_check(GREEN)],
    )
    with dg.instance_for_test() as instance:
        def tick():
            context = dg.build_sensor_context(instance=instance, resources=resources,
                                              repository_def=definitions.get_repository_def())
            return sensor.evaluate_tick(context)

        def run(request):
            result = definitions.resolve_job_def("green_taxi_job").execute_in_process(
                partition_key=request.partition_key, instance=instance, tags=request.tags)
            assert result.success

        nothing = tick()
        assert not nothing.run_requests and f"{month:%Y-%m} not published" in nothing.skip_message
        shutil.copy(REAL, mirror / name)  # the TLC publishes the month
        [new] = tick().run_requests
        assert (new.partition_key, new.tags["reason"], new.tags["trigger"], new.tags["file"]) == (key, "new", "sensor", name)
        run(new)
        assert not tick().run_requests  # loaded and unchanged
        table = pq.read_table(REAL)
        pq.write_table(table.slice(0, 40_000), mirror / name)  # republished, corrected: rows removed
        [changed] = tick().run_requests
        assert changed.tags["reason"] == "changed" and changed.run_key != new.run_key
        run(changed)
        assert query(tmp_path / "home", "SELECT count(*) FROM zoomcamp.green_tripdata") == [(40_000,)]
        assert not tick().run_requests
        with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb")) as con:  # deleted by hand
            con.execute(f"DELETE FROM zoomcamp.green_tripdata_{month:%Y_%m}")
        [missing] = tick().run_requests
        assert missing.tags["reason"] == "missing"
        run(missing)
        assert query(tmp_path / "home", "SELECT count(*) FROM zoomcamp.green_tripdata") == [(40_000,)]
