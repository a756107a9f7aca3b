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
import shutil
import time
from pathlib import Path

import pytest

from taxi_pipeline_tests.compose_stack import PASSWORD, Deployment
from taxi_pipeline_tests.docker_engine import docker_engine, prepare_base_images
from taxi_pipeline_tests.emulators import PROJECT
from taxi_pipeline_tests.postgres import free_port
from taxi_pipeline_tests.servers import serve_folder
from taxi_pipeline_tests.support import MIRROR, TLC, read_csv_gz, write_csv_gz

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).parents[1]
ARTIFACTS = ROOT / "test-artifacts"
IMAGE = "taxi-pipeline:deploy-test"
DATASET = "zoomcamp_deploy"
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
        yield engine
        engine.docker("container", "prune", "-f", check=False)  # the finished run containers


def build_mirror(root: Path) -> dict[str, int]:
    """The bundled release mirror, four more green months (distinct slices of a real one) and an
    empty TLC folder the tests publish into."""
    shutil.copytree(MIRROR, root)
    header, october = read_csv_gz(MIRROR / "green" / "green_tripdata_2020-10.csv.gz")
    for i, month in enumerate(["2020-01", "2020-02", "2020-03", "2020-05"]):
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
            stack.compose("down", "-v", check=False)
            print("\n" + "\n".join(stack.log))


def bq_counts(bq, table: str) -> dict[str, tuple[int, int]]:
    rows = bq.query(f"SELECT filename, COUNT(*), COUNT(DISTINCT unique_row_id) FROM `{PROJECT}.{DATASET}.{table}` "
                    "GROUP BY filename").result()
    return {r[0]: (r[1], r[2]) for r in rows}


def assert_in_own_container(stack: Deployment, run_id: str) -> str:
    """The run ran in a container of the deployment's image that DockerRunLauncher started for it."""
    container = stack.container(run_id)
    assert container["Config"]["Image"] == IMAGE
    assert container["Config"]["Labels"]["dagster/run_id"] == run_id
    assert container["HostConfig"]["NetworkMode"] == "host"
    assert "execute_run" in " ".join(container["Config"]["Cmd"]) or "api" in container["Config"]["Cmd"]
    return container["Name"].lstrip("/")


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
    command = deployment.engine.docker("inspect", "-f", "{{json .Config.Cmd}}", "taxi_pipeline_webserver_1")
    assert '"-h","127.0.0.1"' in command, command


LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) { __typename
    ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def launch_backfill(stack: Deployment, by_colour: dict[str, list[str]]) -> str:
    assets = [(colour, month) for colour, months in by_colour.items() for month in months]
    params = {"partitionsByAssets": [
        {"assetKey": {"path": [f"{colour}_{asset}"]}, "partitions": {"ranges": [{"start": m, "end": m} for m in months]}}
        for colour, months in by_colour.items() for asset in ("raw_file", "staging", "tripdata")],
        "fromFailure": False, "tags": [{"key": "dagster/from_ui", "value": "true"}]}
    assert assets
    result = stack.graphql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def wait_for_backfill(stack: Deployment, backfill_id: str, timeout_s: float = 400) -> str:
    deadline = time.monotonic() + timeout_s
    while (status := stack.query("SELECT status FROM bulk_actions WHERE key = %s", [backfill_id])[0][0]) in (
            "REQUESTED", "CANCELING"):
        assert time.monotonic() < deadline, f"backfill {backfill_id} still {status}"
        time.sleep(2)
    return status


def test_a_ui_backfill_runs_every_month_in_its_own_container_through_the_docker_run_launcher(deployment, bq):
    started = time.monotonic()
    backfill_id = launch_backfill(deployment, {"green": list(GREEN), "yellow": list(YELLOW)})
    assert wait_for_backfill(deployment, backfill_id) == "COMPLETED_SUCCESS"
    runs = deployment.wait_for_runs(4, "dagster/backfill", backfill_id)
    assert [status for _, status in runs] == ["SUCCESS"] * 4, runs
    report, months = [], {}
    for run_id, _ in runs:
        tags = deployment.tags(run_id)
        colour, partition = tags["taxi"], tags["dagster/partition"]
        expected = (GREEN if colour == "green" else YELLOW)[partition]
        assert tags["backfill"] == "true" and tags["file"] == expected[0], tags
        assert tags["docker/image"] == IMAGE
        months[(colour, partition)] = run_id
        report.append(f"{colour} {partition}: run {run_id[:8]} SUCCESS in container "
                      f"{assert_in_own_container(deployment, run_id)} ({tags['docker/container_id'][:12]})")
    assert sorted(months) == sorted([("green", p) for p in GREEN] + [("yellow", p) for p in YELLOW])
    assert len({deployment.tags(r)["docker/container_id"] for r, _ in runs}) == 4
    run_ids = [r for r, _ in runs]
    assert deployment.event_count(run_ids, "PIPELINE_SUCCESS") == 4  # RUN_SUCCESS, under its stored name
    assert deployment.event_count(run_ids, "ASSET_MATERIALIZATION") == 12
    assert bq_counts(bq, "green_tripdata") == {name: (n, n) for name, n in GREEN.values()}
    assert bq_counts(bq, "yellow_tripdata") == {name: (n, n) for name, n in YELLOW.values()}
    print("\n" + "\n".join(report) + f"\nbackfill of 4 months: {time.monotonic() - started:.0f} s")
