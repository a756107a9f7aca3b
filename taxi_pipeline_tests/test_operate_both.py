"""The operators' CLI where it behaves the same on both targets, one test body over each (`local`: a
folder + DuckDB; `gcp`: GCS + BigQuery on the emulators, marked `gcp`): the course's Kestra table
refused, adopted with every row, then reloaded exactly; fresh-start of one colour. What one target
alone shows is asserted for it alone. The target-specific tests: `test_operate.py` (DuckDB's lock,
the CLI's exit codes, the shape check's messages) and `test_operate_gcp.py` (BigQuery's jobs).
"""

from __future__ import annotations

import collections
import datetime as dt

import dagster as dg
import pytest

from taxi_pipeline.lib.rowid import from_hex_digest, hex_id
from taxi_pipeline.lib.warehouses.shape import ForeignTableError
from taxi_pipeline_tests.helpers.operate_targets import Gcp, Local, Target, cli, execute_job, records
from taxi_pipeline_tests.helpers.support import MIRROR, reference_ids

GREEN_KEYS = ["green_raw_file", "green_staging", "green_tripdata"]
YELLOW_KEYS = ["yellow_raw_file", "yellow_staging", "yellow_tripdata"]
both_targets = pytest.mark.parametrize("target_name", ["local", pytest.param("gcp", marks=pytest.mark.gcp)],
                                       indirect=True)


@pytest.fixture(scope="class")
def target_name(request) -> str:
    """Which target. For gcp it brings the emulators up, and it is class-scoped so that it does so
    before the function-scoped autouse `_bigquery_rules` (conftest.py) looks whether the test uses
    them: only then are the test's requests held to BigQuery's rules. (A class-scoped fixture of a
    test outside a class lives as long as the test.) The local target starts no emulator."""
    if request.param == "gcp":
        request.getfixturevalue("gcp_emulators")
    return request.param


@pytest.fixture
def target(target_name, request, tmp_path) -> Target:
    if target_name == "local":
        return Local(tmp_path)
    bq_proxy = request.getfixturevalue("bq_proxy")
    assert bq_proxy.current_test == request.node.nodeid, "BigQuery's rules do not see this test's requests"
    return Gcp(request.getfixturevalue("bq"), request.getfixturevalue("gcp_emulators"), tmp_path)


@both_targets
def test_a_kestra_table_is_refused_adopted_with_every_row_then_reloaded_exactly(target: Target):
    target.make_kestra_green_table(["2019-01", "2020-04"])
    before = target.kestra_rows()
    assert sum(before.values()) == 99 + 35_612
    with pytest.raises(ForeignTableError) as foreign:
        target.check_main_table()
    refusal = str(foreign.value)
    print(refusal)
    assert refusal.startswith(f"{target.qualified('green_tripdata')} is not this project's green main table")
    assert "the course's Kestra flow" in refusal
    assert "python -m taxi_pipeline adopt green" in refusal and "TAXI_DATASET" in refusal
    if target.name == "local":
        assert "  - column unique_row_id is BLOB, expected UHUGEINT" in refusal
    else:
        assert refusal.splitlines()[:5] == [
            f"{target.qualified('green_tripdata')} is not this project's green main table, so nothing was written to it:",
            "  - column file_month DATE is missing",
            "  - partitioned by DAY(lpep_pickup_datetime), expected PARTITION BY DAY(file_month)",
            "  - not clustered, expected CLUSTER BY lpep_pickup_datetime, PULocationID",
            "It looks like the table the course's Kestra flow made (its ids are 16-byte MD5s).",
        ]
        assert "(not this project's layout" in cli("counts", env=target.env).stdout

    # The job refuses the foreign table before writing anything, and says the two ways out.
    output = execute_job("green_taxi_job", "2020-04-01", target.env, succeed=False)
    assert f"{target.qualified('green_tripdata')} is not this project's green main table" in output
    assert "python -m taxi_pipeline adopt green" in output
    assert target.kestra_rows() == before
    if target.name == "local":
        assert set(target.tables()) == {"green_tripdata"}

    adopted = cli("adopt", "green", env=target.env)
    print(adopted.stdout)
    assert adopted.returncode == 0, adopted.stderr
    assert "35,711 rows in 2 files" in adopted.stdout
    assert target.check_main_table() == ()
    # Every row, its values, and its id: the same MD5, as this project's 16-byte id.
    before = collections.Counter({(hex_id(from_hex_digest(i)), f, d): n for (i, f, d), n in before.items()})
    assert target.rows() == before
    if target.name == "local":
        assert "unique_row_id: BLOB -> UHUGEINT" in adopted.stdout
        # This project's layout: a table per month, under a view of the main table's name.
        assert "one table per month (2) under the view zoomcamp.green_tripdata" in adopted.stdout
        assert set(target.tables()) == {"green_tripdata", "green_tripdata_2019_01", "green_tripdata_2020_04"}
        assert "already this project's layout" in cli("adopt", "green", env=target.env).stdout
    else:
        adopted_as_this_projects_layout_on_bigquery(target)

    execute_job("green_taxi_job", "2020-04-01", target.env)
    ids = target.ids_per_file()
    april = "green_tripdata_2020-04.csv"
    assert sorted(ids[april]) == sorted(reference_ids(april, MIRROR / "green" / f"{april}.gz"))
    assert collections.Counter(ids["green_tripdata_2019-01.csv"]) == collections.Counter(
        {i: n for (i, f, _), n in before.items() if f == "green_tripdata_2019-01.csv"})
    if target.name == "gcp":
        the_earlier_bigquery_layout_is_refused_and_adopted_the_same_way(target)


def adopted_as_this_projects_layout_on_bigquery(target: Gcp) -> None:
    table = target.bq.get_table(target.qualified("green_tripdata"))
    assert (table.time_partitioning.field, table.clustering_fields) == (
        "file_month", ["lpep_pickup_datetime", "PULocationID"])
    assert target.query(f"SELECT DISTINCT filename, file_month FROM {target.main} ORDER BY 1") == [
        ("green_tripdata_2019-01.csv", dt.date(2019, 1, 1)),
        ("green_tripdata_2020-04.csv", dt.date(2020, 4, 1)),
    ]
    left = {t.table_id for t in target.bq.list_tables(target.dataset)}
    assert "green_tripdata__adopting" not in left and "green_tripdata__backup" not in left


def the_earlier_bigquery_layout_is_refused_and_adopted_the_same_way(target: Gcp) -> None:
    """This project's earlier layout kept the ids as the MD5's hex."""
    bq, main = target.bq, target.main
    loaded = target.rows()
    earlier = f"`{target.qualified('green_tripdata_earlier')}`"
    bq.query(f"CREATE TABLE {earlier} PARTITION BY file_month CLUSTER BY unique_row_id AS SELECT "
             r"REGEXP_REPLACE(REVERSE(TO_HEX(unique_row_id)), r'(.)(.)', r'\2\1') AS unique_row_id, "
             f"* EXCEPT (unique_row_id) FROM {main}").result()
    bq.delete_table(target.qualified("green_tripdata"))
    bq.query(f"CREATE TABLE {main} PARTITION BY file_month CLUSTER BY unique_row_id AS SELECT * FROM {earlier}").result()
    with pytest.raises(ForeignTableError) as foreign:
        target.check_main_table()
    assert "  - column unique_row_id is STRING, expected BYTES" in str(foreign.value)
    assert "this project's earlier layout" in str(foreign.value)
    adopted = cli("adopt", "green", env=target.env)
    assert adopted.returncode == 0, adopted.stderr
    assert "unique_row_id: STRING -> BYTES" in adopted.stdout and "file_month: added" not in adopted.stdout
    assert target.rows() == loaded


@both_targets
def test_fresh_start_lists_then_deletes_one_colour_and_nothing_else(target: Target):
    env = target.env
    execute_job("green_taxi_job", "2019-01-01", env)
    execute_job("yellow_taxi_job", "2020-07-01", env)
    if target.name == "local":  # what a killed run leaves behind
        stray = "green_tripdata_2019_01__building"
        target.create_table(stray)
        target.put_object("green/.green_tripdata_2020-04.csv.gz.123.part", b"x" * 10)
    else:  # what the course's Kestra flow leaves: its copy of the file at the bucket's root, its table
        stray = "green_tripdata_2019_01_ext"
        target.put_object("green_tripdata_2019-01.csv", b"the course's copy, at the root")
        target.create_table(stray)

    def state():
        return target.tables(), target.objects(), records(target.dagster_home, GREEN_KEYS + YELLOW_KEYS)

    before = state()
    # (Whether a month's staging table outlives its merge is the warehouse's choice.)
    assert {"green_tripdata", stray, "yellow_tripdata"} <= set(before[0])
    assert before[2]["green_tripdata"] == (["2019-01-01"], 2)

    dry = cli("fresh-start", "green", env=env)
    print(dry.stdout)
    assert dry.returncode == 0 and state() == before
    for listed in (f"{target.qualified('green_tripdata')} ", f"{target.qualified(stray)} ",
                   "green/green_tripdata_2019-01.csv.gz ", "green_raw_file ",
                   "1 materialized partition (2019-01-01), 1 month_matches_source check run"):
        assert listed in dry.stdout, listed
    assert "yellow" not in dry.stdout
    if target.name == "local":
        assert "zoomcamp.green_tripdata_2019_01 " in dry.stdout and ".part" in dry.stdout
        refused_while_a_run_of_the_colour_is_in_flight(target, state, before)

    done = cli("fresh-start", "green", "--yes", env=env)
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    after = state()
    assert not [t for t in after[0] if t.startswith("green")] and after[0] == {
        t: n for t, n in before[0].items() if t.startswith("yellow")}
    assert after[2] == {**dict.fromkeys(GREEN_KEYS, ([], 0)), **{k: before[2][k] for k in YELLOW_KEYS}}
    assert before[2]["yellow_tripdata"] == (["2020-07-01"], 2)
    if target.name == "local":
        assert after[1] == {k: v for k, v in before[1].items() if k.startswith("yellow/")}
        # A backfill starts from nothing.
        execute_job("green_taxi_job", "2019-01-01", env)
        assert cli("counts", env=env).stdout.splitlines()[:2] == [
            "zoomcamp.green_tripdata", "  green_tripdata_2019-01.csv                 99 rows            99 distinct unique_row_id"]
    else:  # the course's copy at the bucket's root is not this project's: kept
        assert sorted(after[1]) == ["green_tripdata_2019-01.csv", "yellow/yellow_tripdata_2020-07.csv.gz"]


def refused_while_a_run_of_the_colour_is_in_flight(target: Target, state, before) -> None:
    """The instance's runs, the same whatever the target: checked on the local one."""
    with dg.DagsterInstance.from_config(str(target.dagster_home)) as instance:
        instance.add_run(dg.DagsterRun(job_name="green_taxi_job", run_id="inflight", status=dg.DagsterRunStatus.STARTED))
    refused = cli("fresh-start", "green", "--yes", env=target.env)
    assert refused.returncode == 1 and "run inflight (STARTED)" in refused.stderr and state() == before
    with dg.DagsterInstance.from_config(str(target.dagster_home)) as instance:
        instance.delete_run("inflight")
