"""The operators' CLI (`python -m taxi_pipeline`) on the embedded target: real DuckDB files, the
real bucket folder, a real Dagster instance in a temporary DAGSTER_HOME, `dagster job execute`
and `dg` as subprocesses, and a second process that really holds the DuckDB file's lock.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.rowid import from_hex_digest, hex_id
from taxi_pipeline.lib.warehouses.duckdb import admin as duckdb_admin
from taxi_pipeline.lib.warehouses.duckdb.admin import check_main_table
from taxi_pipeline.lib.warehouses.duckdb.lock_wait import LOCK_TAKEN, lock_holder, lock_wait_message
from taxi_pipeline.lib.warehouses.shape import AdoptError, ForeignTableError
from taxi_pipeline_tests.helpers.support import MIRROR, load_month, make_resources, query, reference_ids

ROOT = Path(__file__).parents[1]
GREEN_KEYS = ["green_raw_file", "green_staging", "green_tripdata"]
YELLOW_KEYS = ["yellow_raw_file", "yellow_staging", "yellow_tripdata"]
# The course's DDL (kestra_anchor.md 1.4) in DuckDB types, ids as 16 MD5 bytes, amounts and counts
# in the types of the course's Postgres flow, so adopt has real casts to make.
KESTRA_GREEN_COLUMNS = (
    "VendorID VARCHAR, lpep_pickup_datetime TIMESTAMP, lpep_dropoff_datetime TIMESTAMP, store_and_fwd_flag VARCHAR, "
    "RatecodeID VARCHAR, PULocationID VARCHAR, DOLocationID VARCHAR, passenger_count INTEGER, trip_distance DOUBLE, "
    "fare_amount DOUBLE, extra DOUBLE, mta_tax DOUBLE, tip_amount DOUBLE, tolls_amount DOUBLE, ehail_fee DOUBLE, "
    "improvement_surcharge DOUBLE, total_amount DOUBLE, payment_type INTEGER, trip_type VARCHAR, congestion_surcharge DOUBLE"
)
# Kestra's key: 5 columns cast to text (BigQuery prints a TIMESTAMP as `YYYY-MM-DD HH:MM:SS+00`), MD5 as bytes.
KESTRA_KEY = (
    "unhex(md5(concat(coalesce(VendorID, ''), coalesce(strftime(lpep_pickup_datetime, '%Y-%m-%d %H:%M:%S') || '+00', ''), "
    "coalesce(strftime(lpep_dropoff_datetime, '%Y-%m-%d %H:%M:%S') || '+00', ''), coalesce(PULocationID, ''), "
    "coalesce(DOLocationID, ''))))"
)


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "dagster").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAXI_", "GCP_"))}
    return {**env, "DAGSTER_HOME": str(tmp_path / "dagster"), "TAXI_HOME": str(tmp_path / "home"),
            "TAXI_SOURCE_URL": MIRROR.as_uri(), **extra}


def cli(*args: str, env: dict[str, str], module: str = "taxi_pipeline") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def cli_at_once(calls: dict[str, tuple[tuple[str, ...], dict[str, str]]]) -> dict[str, subprocess.CompletedProcess]:
    """Several independent CLI calls in parallel (each pays Python's and Dagster's start-up)."""
    procs = {name: subprocess.Popen([sys.executable, "-m", "taxi_pipeline", *args], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (args, env) in calls.items()}
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def execute_job(job: str, partition: str, env: dict[str, str], succeed: bool = True) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "taxi_pipeline.definitions",
         "-j", job, "--tags", json.dumps({"dagster/partition": partition})],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert (done.returncode == 0) == succeed, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def create_kestra_green_table(con: duckdb.DuckDBPyConnection, dataset: str, months: list[str]) -> None:
    """The course's main table, loaded month by month the Kestra way: key the rows, then MERGE
    WHEN NOT MATCHED THEN INSERT (every row of a month's first load, in-file duplicates too)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {dataset}")
    con.execute(f"CREATE TABLE {dataset}.green_tripdata (unique_row_id BLOB, filename VARCHAR, {KESTRA_GREEN_COLUMNS})")
    types = ", ".join(f"'{c.split()[0]}': '{c.split()[1]}'" for c in KESTRA_GREEN_COLUMNS.split(", "))
    for month in months:
        file = f"green_tripdata_{month}.csv"
        path = MIRROR / "green" / f"{file}.gz"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE month AS SELECT {KESTRA_KEY} AS unique_row_id, $file AS filename, * "
            f"FROM read_csv($path, header = true, auto_detect = false, columns = {{{types}}})",
            {"file": file, "path": str(path)},
        )
        con.execute(f"INSERT INTO {dataset}.green_tripdata SELECT * FROM month "
                    f"WHERE unique_row_id NOT IN (SELECT unique_row_id FROM {dataset}.green_tripdata)")


@contextlib.contextmanager
def holding_lock(path: Path, *argv: str) -> Iterator[subprocess.Popen]:
    """A second process with the DuckDB file open for writing, as a DuckDB CLI or a notebook has it."""
    script = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), *argv],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tables(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        names = [n for (n,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'zoomcamp'").fetchall()]
        return {n: con.execute(f'SELECT count(*) FROM zoomcamp."{n}"').fetchone()[0] for n in names}


def records(dagster_home: Path, keys: list[str]) -> dict[str, tuple[list[str], int]]:
    """Materialized partitions and check-execution records per asset, read from the instance."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return {
            key: (sorted(instance.get_materialized_partitions(dg.AssetKey(key))), sum(
                len(instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(dg.AssetKey(key), name), limit=1000))
                for name in ("month_matches_source", "schema_known")))
            for key in keys
        }


def files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def test_help_on_every_command_and_exit_codes_scripts_can_trust(tmp_path):
    env = environment(tmp_path)
    expected = {
        "--help": (("--help",), env, 0), "counts --help": (("counts", "--help"), env, 0),
        "fresh-start --help": (("fresh-start", "--help"), env, 0), "adopt --help": (("adopt", "--help"), env, 0),
        "no command": ((), env, 2), "unknown command": (("vacuum",), env, 2),
        "no colour": (("fresh-start",), env, 2), "unknown colour": (("fresh-start", "purple"), env, 2),
        "adopt all": (("adopt", "all"), env, 2),
        "unknown target": (("counts",), {**env, "TAXI_TARGET": "mars"}, 2),
        "gcp without project": (("counts",), {**env, "TAXI_TARGET": "gcp"}, 2),
        "no DAGSTER_HOME": (("fresh-start", "green"), {k: v for k, v in env.items() if k != "DAGSTER_HOME"}, 2),
        "counts, no warehouse yet": (("counts",), env, 1),
        "adopt, no table": (("adopt", "green"), env, 1),
    }
    done = cli_at_once({name: (args, e) for name, (args, e, _) in expected.items()})
    assert {n: d.returncode for n, d in done.items()} == {n: code for n, (_, _, code) in expected.items()}, {
        n: d.stderr[-300:] for n, d in done.items()}
    assert all(c in done["--help"].stdout for c in ("counts", "fresh-start", "adopt", "exit codes"))
    assert "--yes" in done["fresh-start --help"].stdout and "$DAGSTER_HOME" in done["fresh-start --help"].stdout
    assert "file_month" in done["adopt --help"].stdout and "snapshot" in done["counts --help"].stdout
    assert "invalid choice: 'purple'" in done["unknown colour"].stderr
    assert "GCP_PROJECT_ID" in done["gcp without project"].stderr
    assert "DAGSTER_HOME is not set" in done["no DAGSTER_HOME"].stderr
    assert "no warehouse at" in done["counts, no warehouse yet"].stderr
    assert "nothing to adopt" in done["adopt, no table"].stderr


def test_lock_holder_is_named_from_a_real_second_process(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    for argv, advice in (((), "close it"), (("dagster", "job", "execute"), "another run's warehouse step")):
        with holding_lock(path, *argv) as holder:
            with pytest.raises(duckdb.IOException) as locked:
                duckdb.connect(str(path))
            found = lock_holder(str(locked.value))
            assert found.pid == holder.pid and found.command.split()[:2] == [sys.executable, "-c"]
            line = lock_wait_message(path, str(locked.value), 12.4, timeout_s=900)
            print(line)
            assert f"warehouse {path} is locked by PID {holder.pid} (" in line
            assert "waiting, 12 s so far (gives up after 900 s)" in line and advice in line
    assert lock_holder("IO Error: No such file or directory") is None


def test_a_run_waits_for_a_reader_naming_it_in_the_run_log_and_completes_when_it_lets_go(tmp_path):
    home = tmp_path / "home"
    resources = make_resources(home, MIRROR.as_uri())
    assert load_month(GREEN, "2019-01-01", resources).success
    instance = dg.DagsterInstance.ephemeral()
    with holding_lock(home / "warehouse.duckdb") as holder:
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.update(result=load_month(
            GREEN, "2019-10-01", resources, instance=instance)))
        worker.start()
        time.sleep(8)  # the run downloads, then waits for the file
        assert worker.is_alive()
    worker.join(120)
    result = outcome["result"]
    assert result.success
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    waits = [m for m in logs if "is locked by PID" in m]
    assert waits and f"PID {holder.pid}" in waits[0] and "waiting" in waits[0], logs[-20:]
    assert "close it" in waits[0] and "python -m taxi_pipeline counts" in waits[0]
    taken = [m for m in logs if LOCK_TAKEN in m]  # the wait's end, and for how long it was
    assert taken and re.search(rf"after \d+\.\d s of waiting for PID {holder.pid} ", taken[0]), logs[-20:]
    assert query(home, "SELECT count(*) FROM zoomcamp.green_tripdata") == [(99 + 1_308,)]


def test_counts_reads_a_snapshot_while_a_process_holds_the_file_and_writes_wait_for_nobody(tmp_path):
    env = environment(tmp_path)
    execute_job("green_taxi_job", "2019-01-01", env)
    expected = "zoomcamp.green_tripdata\n  green_tripdata_2019-01.csv                 99 rows            99 distinct unique_row_id\n"
    assert cli("counts", env=env).stdout == expected
    path = tmp_path / "home" / "warehouse.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        assert check_main_table(con, "zoomcamp", GREEN) == ()  # the layout the pipeline makes passes
    with holding_lock(path) as holder:
        counted = cli("counts", env=env)
        refused = cli("fresh-start", "green", "--yes", env=env)
    print(counted.stderr, refused.stderr, sep="\n")
    assert counted.returncode == 0 and counted.stdout == expected
    assert f"locked by PID {holder.pid}" in counted.stderr and "read from a copy of the file" in counted.stderr
    assert refused.returncode == 1 and f"locked by PID {holder.pid}" in refused.stderr
    assert tables(path)["green_tripdata"] == 99


def test_the_shape_check_accepts_this_projects_table_and_names_what_differs_in_others():
    colour = GREEN
    with duckdb.connect() as con:
        assert check_main_table(con, "zoomcamp", colour) == ()  # no table yet: the load creates it
        con.execute("CREATE SCHEMA zoomcamp")
        con.execute(duckdb_admin.create_table("zoomcamp", colour, colour.main_table))  # the one-table layout
        assert check_main_table(con, "zoomcamp", colour) == ()
        con.execute("ALTER TABLE zoomcamp.green_tripdata ALTER unique_row_id TYPE VARCHAR")  # earlier hex ids:
        assert check_main_table(con, "zoomcamp", colour) == ()  # ours, converted by the warehouse itself
        con.execute('ALTER TABLE zoomcamp.green_tripdata DROP COLUMN cbd_congestion_fee')
        assert [c.name for c in check_main_table(con, "zoomcamp", colour)] == ["cbd_congestion_fee"]  # "to add"
        con.execute('ALTER TABLE zoomcamp.green_tripdata ALTER trip_distance TYPE DOUBLE')
        con.execute('ALTER TABLE zoomcamp.green_tripdata DROP COLUMN ehail_fee')
        con.execute('ALTER TABLE zoomcamp.green_tripdata ADD COLUMN file_month DATE')
        with pytest.raises(ForeignTableError) as foreign:
            check_main_table(con, "zoomcamp", colour)
    message = str(foreign.value)
    assert message.splitlines()[1:4] == [
        "  - column trip_distance is DOUBLE, expected DECIMAL(38, 9)",
        "  - column ehail_fee DECIMAL(38, 9) is missing",
        "  - column file_month DATE is not one of this project's",
    ]
    assert "Kestra" not in message and "python -m taxi_pipeline adopt green" in message and "TAXI_DATASET" in message


def test_adopt_converts_a_kestra_table_keeping_every_row_and_the_next_load_replaces_its_month(tmp_path):
    env = environment(tmp_path)
    path = tmp_path / "home" / "warehouse.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        create_kestra_green_table(con, "zoomcamp", ["2019-01", "2020-04"])
        before = collections.Counter(con.execute(
            "SELECT lower(hex(unique_row_id)), filename, trip_distance FROM zoomcamp.green_tripdata").fetchall())
        with pytest.raises(ForeignTableError) as foreign:
            check_main_table(con, "zoomcamp", GREEN)
    print(foreign.value)
    assert str(foreign.value).startswith("zoomcamp.green_tripdata is not this project's green main table")
    assert "  - column unique_row_id is BLOB, expected UHUGEINT" in str(foreign.value)
    assert "the course's Kestra flow" in str(foreign.value)
    assert sum(before.values()) == 99 + 35_612

    # The job refuses the foreign table before writing anything, and says the two ways out.
    output = execute_job("green_taxi_job", "2020-04-01", env, succeed=False)
    assert "zoomcamp.green_tripdata is not this project's green main table" in output
    assert "python -m taxi_pipeline adopt green" in output
    with duckdb.connect(str(path), read_only=True) as con:
        unchanged = collections.Counter(con.execute(
            "SELECT lower(hex(unique_row_id)), filename, trip_distance FROM zoomcamp.green_tripdata").fetchall())
    assert unchanged == before and set(tables(path)) == {"green_tripdata"}

    adopted = cli("adopt", "green", env=env)
    print(adopted.stdout)
    assert adopted.returncode == 0, adopted.stderr
    assert "unique_row_id: BLOB -> UHUGEINT" in adopted.stdout and "35,711 rows in 2 files" in adopted.stdout
    with duckdb.connect(str(path)) as con:
        assert check_main_table(con, "zoomcamp", GREEN) == ()
        after = collections.Counter(con.execute(
            "SELECT printf('%032x', unique_row_id), filename, trip_distance::DOUBLE FROM zoomcamp.green_tripdata"
        ).fetchall())
    # Every row, its values, and its id: the same MD5, as this project's 16-byte number.
    before = collections.Counter({(hex_id(from_hex_digest(i)), f, d): n for (i, f, d), n in before.items()})
    assert after == before
    assert set(tables(path)) == {"green_tripdata"}
    assert "already this project's layout" in cli("adopt", "green", env=env).stdout

    execute_job("green_taxi_job", "2020-04-01", env)
    with duckdb.connect(str(path), read_only=True) as con:
        ids = dict(con.execute(
            "SELECT filename, list(printf('%032x', unique_row_id)) FROM zoomcamp.green_tripdata GROUP BY 1").fetchall())
    april = "green_tripdata_2020-04.csv"
    assert sorted(ids[april]) == sorted(reference_ids(april, MIRROR / "green" / f"{april}.gz"))
    assert collections.Counter(ids["green_tripdata_2019-01.csv"]) == collections.Counter(
        {i: n for (i, f, _), n in before.items() if f == "green_tripdata_2019-01.csv"})


def test_adopt_refuses_to_drop_a_column_and_changes_nothing(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        create_kestra_green_table(con, "zoomcamp", ["2019-01"])
        con.execute("ALTER TABLE zoomcamp.green_tripdata ADD COLUMN note VARCHAR")
        with pytest.raises(AdoptError, match="column note VARCHAR has no place"):
            duckdb_admin.adopt(con, "zoomcamp", GREEN)
        assert con.execute("SELECT typeof(unique_row_id), count(*) FROM zoomcamp.green_tripdata GROUP BY 1").fetchall() == [("BLOB", 99)]


def test_fresh_start_lists_then_deletes_one_colour_and_a_backfill_starts_from_nothing(tmp_path):
    env = environment(tmp_path)
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    execute_job("green_taxi_job", "2019-01-01", env)
    execute_job("yellow_taxi_job", "2020-07-01", env)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:  # what a killed run leaves behind
        con.execute("CREATE TABLE zoomcamp.green_tripdata_2019_01__building AS SELECT 1 AS x")
    (home / "bucket" / "green" / ".green_tripdata_2020-04.csv.gz.123.part").write_bytes(b"x" * 10)

    def state():
        return tables(home / "warehouse.duckdb"), files(home / "bucket"), records(dagster_home, GREEN_KEYS + YELLOW_KEYS)

    before = state()
    assert records(dagster_home, GREEN_KEYS)["green_tripdata"] == (["2019-01-01"], 2)

    dry = cli("fresh-start", "green", env=env)
    print(dry.stdout)
    assert dry.returncode == 0 and state() == before
    for listed in ("zoomcamp.green_tripdata ", "zoomcamp.green_tripdata_2019_01 ", "green_tripdata_2019_01__building",
                   "green/green_tripdata_2019-01.csv.gz ", ".part", "green_raw_file ",
                   "1 materialized partition (2019-01-01), 1 month_matches_source check run"):
        assert listed in dry.stdout, listed
    assert "yellow" not in dry.stdout

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:  # a run of green in flight
        instance.add_run(dg.DagsterRun(job_name="green_taxi_job", run_id="inflight", status=dg.DagsterRunStatus.STARTED))
    refused = cli("fresh-start", "green", "--yes", env=env)
    assert refused.returncode == 1 and "run inflight (STARTED)" in refused.stderr and state() == before
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.delete_run("inflight")

    done = cli("fresh-start", "green", "--yes", env=env)
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    after = state()
    assert not [t for t in after[0] if t.startswith("green")] and after[0] == {
        t: n for t, n in before[0].items() if t.startswith("yellow")}
    assert after[1] == {k: v for k, v in before[1].items() if k.startswith("yellow/")}
    assert after[2] == {**dict.fromkeys(GREEN_KEYS, ([], 0)), **{k: before[2][k] for k in YELLOW_KEYS}}
    assert before[2]["yellow_tripdata"] == (["2020-07-01"], 2)

    execute_job("green_taxi_job", "2019-01-01", env)
    assert cli("counts", env=env).stdout.splitlines()[:2] == [
        "zoomcamp.green_tripdata", "  green_tripdata_2019-01.csv                 99 rows            99 distinct unique_row_id"]


def test_dg_check_defs_and_list_defs_pass(tmp_path):
    env = {**environment(tmp_path), "DAGSTER_DG_UPDATE_CHECK_ENABLED": "false", "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    dg_cli = str(Path(sys.executable).with_name("dg"))
    checked = subprocess.run([dg_cli, "check", "defs"], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert checked.returncode == 0 and "All definitions loaded successfully" in checked.stdout + checked.stderr, checked.stderr
    listed = subprocess.run([dg_cli, "list", "defs", "--json"], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert listed.returncode == 0, listed.stderr
    defs = json.loads(listed.stdout)
    assert {j["name"] for j in defs["jobs"]} == {"green_taxi_job", "yellow_taxi_job", "analytics_job"}
    assert {s["name"] for s in defs["schedules"]} == {"green_taxi_schedule", "yellow_taxi_schedule"}
