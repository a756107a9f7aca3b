"""The team's deployment, for real: Debian's dockerd started by the tests (docker_engine.py), the
base images built from Debian's packages, deploy/Dockerfile built as shipped, and
deploy/docker-compose.yml brought up as shipped by docker-compose 1.29 with the loopback override
(compose_stack.py). On the GCP target against fake-gcs-server and local-bigquery on 127.0.0.1, the
months served by a loopback HTTP mirror of real TLC files. Every run goes through the daemon's
DockerRunLauncher into a container of its own, on the host network. Run records, tags and event
logs are read from the deployment's Postgres; row counts from the BigQuery emulator.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path

import pytest

from taxi_pipeline_tests.helpers.compose_stack import (
    DATASET,
    IMAGE,
    PASSWORD,
    Deployment,
    assert_in_own_container,
    backfill_report,
    bq_counts,
    launch,
    launch_backfill,
    run_failure_message,
    wait_for_backfill,
)
from taxi_pipeline_tests.helpers.docker_engine import docker_engine, prepare_base_images
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.postgres import free_port
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, TLC, read_csv_gz, write_csv_gz

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).parents[1]
ARTIFACTS = ROOT / "test-artifacts"
GREEN = {"2019-01-01": ("green_tripdata_2019-01.csv", 99), "2019-10-01": ("green_tripdata_2019-10.csv", 1_308),
         "2020-04-01": ("green_tripdata_2020-04.csv", 35_612)}
YELLOW = {"2020-01-01": ("yellow_tripdata_2020-01.csv", 999)}


def months_ago(count: int) -> dt.date:
    month = dt.datetime.now(dt.UTC).date().replace(day=1)
    for _ in range(count):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


@pytest.fixture(scope="module")
def engine():
    with docker_engine() as engine:
        prepare_base_images(engine)
        engine.timings["shipped_image"] = engine.build(IMAGE, ROOT / "deploy" / "Dockerfile", ROOT)
        engine.docker("image", "prune", "-f")  # the previous builds' untagged images: 1.1 GB each
        yield engine
        engine.docker("container", "prune", "-f", check=False)  # the finished run containers


def build_mirror(root: Path) -> dict[str, int]:
    """The bundled release mirror, three more green months (distinct slices of a real one) and an
    empty TLC folder the tests publish into."""
    shutil.copytree(MIRROR, root)
    header, october = read_csv_gz(MIRROR / "green" / "green_tripdata_2020-10.csv.gz")
    for i, month in enumerate(["2020-01", "2020-02", "2020-03"]):
        write_csv_gz(root / "green" / f"green_tripdata_{month}.csv.gz", header, october[i * 900: i * 900 + 800])
    (root / "tlc").mkdir()
    return {path.name.removesuffix(".gz"): len(read_csv_gz(path)[1]) for path in root.rglob("*.csv.gz")}


@pytest.fixture(scope="module")
def deployment(engine, gcp_emulators, tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy")
    rows = build_mirror(folder / "mirror")
    with serve_folder(folder / "mirror") as mirror:
        variables = {"TAXI_IMAGE": IMAGE, "DAGSTER_PG_PASSWORD": PASSWORD, "GCP_PROJECT_ID": PROJECT,
                     "GCP_BUCKET_NAME": "taxi-deploy", "TAXI_DATASET": DATASET,
                     "DOCKER_GID": str(engine.socket_gid), "DOCKER_SOCKET": str(engine.socket),
                     "DAGSTER_PG_PORT": str(free_port()), "DAGSTER_GRPC_PORT": str(free_port()),
                     "DAGSTER_WEBSERVER_PORT": str(free_port())}
        run_env = {"STORAGE_EMULATOR_HOST": gcp_emulators["STORAGE_EMULATOR_HOST"],
                   "BIGQUERY_EMULATOR_HOST": gcp_emulators["BIGQUERY_EMULATOR_HOST"],
                   "TAXI_SOURCE_URL": mirror.url, "TAXI_TLC_URL": f"{mirror.url}/tlc"}
        stack = Deployment(engine, folder, variables, run_env)
        stack.rows, stack.mirror = rows, folder / "mirror"
        try:
            engine.timings["compose_up"] = stack.up()
            yield stack
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "deploy_compose.log").write_text(stack.compose("logs", "--no-color", check=False))
            stack.compose("down", "-v", "--timeout", "3", check=False)
            print("\n" + "\n".join(stack.log))


def test_init_instance_migrated_a_fresh_postgres_and_set_every_pool(engine, deployment):
    sizes = {tag: engine.image_size_mb(tag) for tag in
             ("local/debian:bookworm", "python:3.11-slim-bookworm", "postgres:15-bookworm", IMAGE)}
    print(f"\nimage sizes (MB): {sizes}\ntimings (s): { {k: round(v, 1) for k, v in engine.timings.items()} }")
    init = deployment.compose("ps", "-a", "init_instance")
    assert "Exit 0" in init, init
    assert deployment.query("SELECT count(*) FROM alembic_version") == [(1,)]
    limits = deployment.query('SELECT concurrency_key, "limit", using_default_limit FROM concurrency_limits')
    assert sorted(limits) == [("bigquery_green_tripdata", 1, False), ("bigquery_yellow_tripdata", 1, False),
                              ("warehouse", 1, False)]


def test_the_webserver_answers_on_loopback(deployment):
    info = deployment.wait_for_webserver()
    assert info["dagster_webserver_version"] == "1.13.27", info
    container = deployment.compose("ps", "-q", "webserver").split()[-1]  # v1 and v2 name containers differently
    command = deployment.engine.docker("inspect", "-f", "{{json .Config.Cmd}}", container)
    assert '"-h","127.0.0.1"' in command, command


def test_the_image_runs_dbt_from_a_venv_of_its_own_and_the_pipeline_finds_it(deployment):
    """dbt-core with the DuckDB adapter in /opt/dbt (scripts/dbt-setup), outside the pipeline's
    Python, which does not import it; the pipeline finds it (/usr/local/bin/dbt, a link) and sees it has no
    BigQuery adapter, so on the GCP target the code location loads without the analytics group."""
    container = deployment.compose("ps", "-q", "user_code").split()[-1]
    script = ("import importlib.util, json, pathlib, shutil; from taxi_pipeline.lib.analytics.project import "
              "default_dbt_executable, has_adapter; e = default_dbt_executable(); print(json.dumps(["
              "str(pathlib.Path(shutil.which(e)).resolve()), has_adapter(e, 'duckdb'), has_adapter(e, 'bigquery'), "
              "importlib.util.find_spec('dbt') is None]))")
    found = deployment.engine.docker("exec", container, "python", "-c", script)
    assert json.loads(found) == ["/opt/dbt/bin/dbt", True, False, True], found
    assert "duckdb: 1.11.1" in deployment.engine.docker("exec", container, "dbt", "--version")


def test_a_ui_backfill_runs_every_month_in_its_own_container_through_the_docker_run_launcher(deployment, bq):
    started = time.monotonic()
    backfill_id = launch_backfill(deployment, {"green": list(GREEN), "yellow": list(YELLOW)})
    status = wait_for_backfill(deployment, backfill_id)
    assert status == "COMPLETED_SUCCESS", backfill_report(deployment, backfill_id)
    runs = deployment.wait_for_runs(4, "dagster/backfill", backfill_id)
    assert [status for _, status in runs] == ["SUCCESS"] * 4, runs
    report, months = [], {}
    for run_id, _ in runs:
        tags = deployment.tags(run_id)
        colour, partition = tags["taxi"], tags["dagster/partition"]
        expected = (GREEN if colour == "green" else YELLOW)[partition]
        assert tags["backfill"] == "true" and tags["file"] == expected[0], tags
        assert tags["dagster/image"] == IMAGE
        months[(colour, partition)] = run_id
        report.append(f"{colour} {partition}: run {run_id[:8]} SUCCESS in container "
                      f"{assert_in_own_container(deployment, run_id)} ({tags['docker/container_id'][:12]})")
    assert sorted(months) == sorted([("green", p) for p in GREEN] + [("yellow", p) for p in YELLOW])
    assert len({deployment.tags(r)["docker/container_id"] for r, _ in runs}) == 4
    run_ids = [r for r, _ in runs]
    assert deployment.event_count(run_ids, "PIPELINE_SUCCESS") == 4  # RUN_SUCCESS, under its stored name
    for run_id in run_ids:  # each run's three assets, materialized in its container, recorded in Postgres
        colour = deployment.tags(run_id)["taxi"]
        keys = {key for (key,) in deployment.query(
            "SELECT DISTINCT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = "
            "'ASSET_MATERIALIZATION'", [run_id])}
        assert keys == {f'["{colour}_{name}"]' for name in ("raw_file", "staging", "tripdata")}, keys
    assert bq_counts(bq, "green_tripdata") == {name: (n, n) for name, n in GREEN.values()}
    assert bq_counts(bq, "yellow_tripdata") == {name: (n, n) for name, n in YELLOW.values()}
    print("\n" + "\n".join(report) + f"\nbackfill of 4 months: {time.monotonic() - started:.0f} s")


def test_dagster_job_launch_queues_a_run_the_deployment_starts_in_its_own_container(deployment, bq):
    launch(deployment, "yellow_taxi_job", **{"dagster/partition": "2020-07-01", "launched_by": "deploy-test"})
    [(run_id, status)] = deployment.wait_for_runs(1, "launched_by", "deploy-test")
    assert status == "SUCCESS"
    assert deployment.tags(run_id)["taxi"] == "yellow"
    name = assert_in_own_container(deployment, run_id)
    n = deployment.rows["yellow_tripdata_2020-07.csv"]
    assert bq_counts(bq, "yellow_tripdata")["yellow_tripdata_2020-07.csv"] == (n, n)
    print(f"\ndagster job launch: run {run_id[:8]} SUCCESS in container {name}")


def publish(stack: Deployment, tlc_file: str, month: dt.date) -> str:
    name = f"green_tripdata_{month:%Y-%m}.parquet"
    shutil.copy(TLC / tlc_file, stack.mirror / "tlc" / name)
    return name


def test_a_sensor_tick_launches_a_late_month_through_the_launcher(deployment, bq):
    month = months_ago(5)  # in the sensor's look-back (12 months), not the schedule's (3)
    name = publish(deployment, "green_tripdata_2025-01.parquet", month)
    [(run_id, status)] = deployment.wait_for_runs(1, "dagster/partition", f"{month:%Y-%m-%d}", timeout_s=180)
    tags = deployment.tags(run_id)
    assert status == "SUCCESS" and tags["trigger"] == "sensor" and tags["dagster/sensor_name"] == "green_taxi_sensor"
    print(f"\nsensor tick: run {run_id[:8]} in container {assert_in_own_container(deployment, run_id)}")
    assert bq_counts(bq, "green_tripdata")[name] == (48_326, 48_326)


def test_a_schedule_tick_launches_the_month_that_just_ended_through_the_launcher(deployment, bq):
    # The sensor would see that month too: stopped (and its tick under way waited out) for the schedule
    # to be the one that launches it.
    deployment.stop_sensor("green_taxi_sensor", "deploy/workspace.grpc.yaml")
    month = months_ago(1)
    name = publish(deployment, "green_tripdata_2023-02.parquet", month)
    try:
        [(run_id, status)] = deployment.wait_for_runs(1, "dagster/partition", f"{month:%Y-%m-%d}", timeout_s=240)
    finally:
        deployment.cli("daemon", "dagster", "sensor", "start", "green_taxi_sensor", "-w", "deploy/workspace.grpc.yaml")
    tags = deployment.tags(run_id)
    assert status == "SUCCESS" and tags["trigger"] == "schedule", tags
    assert tags["dagster/schedule_name"] == "green_taxi_schedule"
    print(f"\nschedule tick: run {run_id[:8]} in container {assert_in_own_container(deployment, run_id)}")
    assert bq_counts(bq, "green_tripdata")[name] == (64_809, 64_809)


def test_a_run_container_killed_mid_merge_is_failed_by_run_monitoring_and_retried(deployment, bq):
    launch(deployment, "green_taxi_job", **{"dagster/partition": "2020-10-01", "launched_by": "kill-test"})
    deadline = time.monotonic() + 240
    while True:  # the merge step (the main table's asset) has started in the run's container
        runs = deployment.runs("launched_by", "kill-test")
        if runs and deployment.query("SELECT 1 FROM event_logs WHERE run_id = %s AND step_key = 'green_tripdata' "
                                     "AND dagster_event_type = 'STEP_START'", [runs[0][0]]):
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.05)
    killed = runs[0][0]
    deployment.engine.docker("kill", deployment.tags(killed)["docker/container_id"])
    [(first, first_status), (retry, retry_status)] = deployment.wait_for_runs(2, "launched_by", "kill-test",
                                                                                timeout_s=300)
    assert (first, first_status) == (killed, "FAILURE")
    merge_ends = deployment.query("SELECT count(*) FROM event_logs WHERE run_id = %s AND step_key = 'green_tripdata' "
                                  "AND dagster_event_type IN ('STEP_SUCCESS', 'STEP_FAILURE')", [killed])
    assert merge_ends == [(0,)]  # killed inside the merge: the step never ended
    assert deployment.container(killed)["State"]["ExitCode"] == 137
    retry_tags = deployment.tags(retry)
    assert retry_status == "SUCCESS" and retry_tags["dagster/parent_run_id"] == killed, retry_tags
    assert retry_tags["dagster/retry_number"] == "1"
    assert_in_own_container(deployment, retry)
    assert bq_counts(bq, "green_tripdata")["green_tripdata_2020-10.csv"] == (95_120, 95_120)
    print(f"\nkilled {killed[:8]} mid-merge: {run_failure_message(deployment, killed)}\n"
          f"retried as {retry[:8]}: SUCCESS, 95120 rows, 95120 distinct ids")


def test_the_daemon_restarted_mid_backfill_completes_it_and_runs_no_month_twice(deployment, bq):
    months = ["2020-01-01", "2020-02-01", "2020-03-01"]  # two run at once (the backfill limit), then the third
    backfill_id = launch_backfill(deployment, {"green": months})
    deadline = time.monotonic() + 240
    while not any(status == "STARTED" for _, status in deployment.runs("dagster/backfill", backfill_id)):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    deployment.compose("restart", "daemon")
    status = wait_for_backfill(deployment, backfill_id)
    assert status == "COMPLETED_SUCCESS", backfill_report(deployment, backfill_id)
    runs = deployment.wait_for_runs(3, "dagster/backfill", backfill_id)
    partitions = sorted(deployment.tags(run_id)["dagster/partition"] for run_id, _ in runs)
    assert partitions == months and [s for _, s in runs] == ["SUCCESS"] * 3, (partitions, runs)
    counts = bq_counts(bq, "green_tripdata")
    for month in months:
        name = f"green_tripdata_{month[:7]}.csv"
        assert counts[name] == (deployment.rows[name],) * 2, name
    print(f"\ndaemon restarted mid-backfill: {len(runs)} runs, one per month, all SUCCESS: "
          f"{', '.join(run_id[:8] for run_id, _ in runs)}")


def test_compose_down_and_up_keeps_the_history_and_the_next_ticks_reload_nothing(deployment):
    runs_before = deployment.query("SELECT run_id, status FROM runs ORDER BY run_id")
    deployment.compose("down")  # no -v: the Postgres volume stays
    assert deployment.compose("ps", "-q").strip() == ""
    up_at = time.time()
    deployment.up()
    assert deployment.query("SELECT run_id, status FROM runs ORDER BY run_id") == runs_before
    deadline = time.monotonic() + 150
    while not deployment.query(
            "SELECT 1 FROM job_ticks WHERE type = 'SCHEDULE' AND status = 'SKIPPED' AND timestamp > to_timestamp(%s) "
            "AND tick_body LIKE %s", [up_at, '%green_taxi_schedule%']):
        assert time.monotonic() < deadline, "no schedule tick after up"
        time.sleep(2)
    time.sleep(10)  # two sensor ticks more
    assert deployment.query("SELECT run_id, status FROM runs ORDER BY run_id") == runs_before
