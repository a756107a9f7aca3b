"""The operators' CLI (`python -m taxi_pipeline`) on the embedded target: real DuckDB files, the
real bucket folder, a real Dagster instance in a temporary DAGSTER_HOME, `dagster job execute`
and `dg` as subprocesses, and a second process that really holds the DuckDB file's lock. What the
CLI does the same on both targets (adopt a Kestra table, fresh-start) is in `test_operate_both.py`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
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
from taxi_pipeline.lib.warehouses.duckdb import admin as duckdb_admin
from taxi_pipeline.lib.warehouses.duckdb import sql as duckdb_sql
from taxi_pipeline.lib.warehouses.duckdb.admin import check_main_table
from taxi_pipeline.lib.warehouses.duckdb.lock_wait import LOCK_TAKEN, lock_holder, lock_wait_message
from taxi_pipeline.lib.warehouses.shape import AdoptError, ForeignTableError
from taxi_pipeline_tests.helpers.operate_targets import (  # cli, environment, execute_job: other tests import them from here
    ROOT,
    cli,
    create_kestra_green_table,
    environment,
    execute_job,
    tables,
)
from taxi_pipeline_tests.helpers.support import MIRROR, load_month, make_resources, query


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


def test_the_shape_check_accepts_this_projects_layout_and_names_what_differs_in_others():
    colour = GREEN
    month = colour.month_table(dt.date(2020, 4, 1))
    with duckdb.connect() as con:
        assert check_main_table(con, "zoomcamp", colour) == ()  # no table yet: the load creates it
        con.execute("CREATE SCHEMA zoomcamp")
        con.execute(duckdb_admin.create_table("zoomcamp", colour, month))
        con.execute(duckdb_sql.create_main_view("zoomcamp", colour, [month]))  # a view over the month tables
        assert check_main_table(con, "zoomcamp", colour) == ()
        con.execute("DROP VIEW zoomcamp.green_tripdata")
        con.execute(duckdb_admin.create_table("zoomcamp", colour, colour.main_table))  # every month in one table,
        con.execute("ALTER TABLE zoomcamp.green_tripdata ALTER unique_row_id TYPE VARCHAR")  # hex ids: the earlier layout
        with pytest.raises(ForeignTableError) as earlier:
            check_main_table(con, "zoomcamp", colour)
        con.execute("ALTER TABLE zoomcamp.green_tripdata ALTER unique_row_id TYPE UHUGEINT")
        con.execute('ALTER TABLE zoomcamp.green_tripdata DROP COLUMN cbd_congestion_fee')  # the TLC's later column:
        con.execute('ALTER TABLE zoomcamp.green_tripdata ALTER trip_distance TYPE DOUBLE')  # a load adds it, no difference
        con.execute('ALTER TABLE zoomcamp.green_tripdata DROP COLUMN ehail_fee')
        con.execute('ALTER TABLE zoomcamp.green_tripdata ADD COLUMN file_month DATE')
        with pytest.raises(ForeignTableError) as foreign:
            check_main_table(con, "zoomcamp", colour)
    assert str(earlier.value).splitlines()[1:3] == [
        "  - column unique_row_id is VARCHAR, expected UHUGEINT", f"  - {duckdb_admin.ONE_TABLE}"]
    assert "this project's earlier layout" in str(earlier.value)
    message = str(foreign.value)
    assert message.splitlines()[1:5] == [
        "  - column trip_distance is DOUBLE, expected DECIMAL(38, 9)",
        "  - column ehail_fee DECIMAL(38, 9) is missing",
        "  - column file_month DATE is not one of this project's",
        f"  - {duckdb_admin.ONE_TABLE}",
    ]
    assert "Kestra" not in message and "cbd_congestion_fee" not in message
    assert "python -m taxi_pipeline adopt green" in message and "TAXI_DATASET" in message


def test_adopt_refuses_to_drop_a_column_and_changes_nothing(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        create_kestra_green_table(con, "zoomcamp", ["2019-01"])
        con.execute("ALTER TABLE zoomcamp.green_tripdata ADD COLUMN note VARCHAR")
        with pytest.raises(AdoptError, match="column note VARCHAR has no place"):
            duckdb_admin.adopt(con, "zoomcamp", GREEN)
        assert con.execute("SELECT typeof(unique_row_id), count(*) FROM zoomcamp.green_tripdata GROUP BY 1").fetchall() == [("BLOB", 99)]


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
