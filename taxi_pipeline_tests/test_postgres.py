"""A team's instance (deploy/) on a real PostgreSQL: Debian's server, started by the tests on
127.0.0.1 (taxi_pipeline_tests/helpers/postgres.py), one fresh database per instance set up by
deploy/init-instance; `dagster` CLI subprocesses; a gRPC code server, a webserver and a daemon on
127.0.0.1 with deploy/workspace.grpc.yaml; DuckDB files in a temporary TAXI_HOME, loaded from the
bundled mirror of real TLC files through file://. Run records and event logs are read from
Postgres with psycopg2. Every server is stopped through the process id it was started with.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import time
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import DagsterInstance
from dagster._config import process_config, resolve_to_config_type
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
from dagster._core.snap.execution_plan_snapshot import ExecutionPlanSnapshot
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.client import DagsterGrpcClient
from dagster._serdes import deserialize_value
from dagster_k8s import K8sRunLauncher

from taxi_pipeline.defs.deployment import SingleHostTargetError, check_single_host_target
from taxi_pipeline_tests.helpers.graphql import graphql
from taxi_pipeline_tests.helpers.postgres import (
    BIN,
    ROOT,
    PostgresServer,
    dagster_env,
    free_port,
    postgres_server,
    service,
    write_dagster_home,
)

pytestmark = pytest.mark.postgres

DEPLOY = ROOT / "deploy"
MIRROR_URL = f"file://{ROOT / 'taxi_pipeline_tests' / 'data' / 'mirror'}"
ARTIFACTS = ROOT / "test-artifacts"
# The four green months of the mirror: partition -> (file, data rows).
GREEN = {
    "2019-01-01": ("green_tripdata_2019-01.csv", 99),
    "2019-10-01": ("green_tripdata_2019-10.csv", 1_308),
    "2020-04-01": ("green_tripdata_2020-04.csv", 35_612),
    "2020-10-01": ("green_tripdata_2020-10.csv", 95_120),
}
IMAGE = "taxi-pipeline:test"


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


@dataclass
class Instance:
    """A fresh Postgres database behind deploy/dagster.postgres.yaml, and its own TAXI_HOME."""

    pg: PostgresServer
    db: str
    env: dict[str, str]
    taxi_home: Path
    init_output: str

    def query(self, sql: str, params: object = None) -> list[tuple]:
        return self.pg.query(self.db, sql, params)

    def execute_month(self, partition: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "dagster"), "job", "execute", "-m", "taxi_pipeline.definitions",
             "-j", "green_taxi_job", "--tags", json.dumps({"dagster/partition": partition})],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def month_rows(self) -> dict[str, int]:
        with duckdb.connect(str(self.taxi_home / "warehouse.duckdb"), read_only=True) as con:
            rows = con.execute("SELECT filename, count(*) FROM zoomcamp.green_tripdata GROUP BY 1").fetchall()
        return dict(rows)

    def run_statuses(self) -> list[str]:
        return sorted(status for (status,) in self.query("SELECT status FROM runs"))

    def runs(self) -> list[DagsterRun]:
        return [deserialize_value(body, DagsterRun) for (body,) in self.query("SELECT run_body FROM runs")]

    def pool_steps(self, pool: str) -> set[str]:
        """The steps in this pool, from the execution plans Dagster stored with the runs."""
        plan_ids = list({run.execution_plan_snapshot_id for run in self.runs()})
        plans = self.query("SELECT snapshot_body FROM snapshots WHERE snapshot_id = ANY(%s)", [plan_ids])
        return {step.key for (body,) in plans
                for step in deserialize_value(zlib.decompress(body).decode(), ExecutionPlanSnapshot).steps
                if step.pool == pool}

    def step_windows(self, steps: set[str]) -> list[tuple]:
        """(start, end, run, step) of these steps in every run, from the event log."""
        rows = self.query("SELECT run_id, step_key, dagster_event_type, timestamp FROM event_logs WHERE "
                          "dagster_event_type IN ('STEP_START', 'STEP_SUCCESS') AND step_key = ANY(%s)",
                          [sorted(steps)])
        found: dict[tuple[str, str], dict[str, object]] = {}
        for run_id, step, kind, at in rows:
            found.setdefault((run_id, step), {})[kind] = at
        return sorted((at["STEP_START"], at["STEP_SUCCESS"], *key) for key, at in found.items())


def new_instance(pg: PostgresServer, folder: Path) -> Instance:
    db = pg.create_database(folder.name)
    home = write_dagster_home(folder / "dagster_home", DEPLOY / "dagster.postgres.yaml")
    # The release mirror only: the publication sensors' months (the last twelve) then need no TLC
    # server, and none is reachable from the tests.
    env = dagster_env(home, pg.env(db), TAXI_HOME=str(folder / "taxi"), TAXI_SOURCE_URL=MIRROR_URL,
                      TAXI_SOURCE="release", TAXI_TLC_URL=f"file://{folder / 'no-tlc'}")
    done = subprocess.run([str(DEPLOY / "init-instance")], env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Instance(pg, db, env, folder / "taxi", done.stdout + done.stderr)


def finish(proc: subprocess.Popen, timeout_s: float = 240) -> str:
    output, _ = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, output[-4000:]
    return output


def test_init_instance_migrates_a_fresh_database_and_a_month_loads_through_the_cli(pg, tmp_path):
    instance = new_instance(pg, tmp_path / "one_month")
    after = instance.init_output.split("after migration")[1]
    schema = re.findall(r"current: (\w+)\s+latest: (\w+)", after)
    assert len(schema) == 3 and all(current == latest for current, latest in schema), instance.init_output
    assert instance.query("SELECT version_num FROM alembic_version") == [(schema[0][1],)]
    # The pool's limit is set explicitly, so no run creates it on first use (dagster#33552).
    limits = instance.query('SELECT concurrency_key, "limit", using_default_limit FROM concurrency_limits')
    assert sorted(limits) == [("bigquery_green_tripdata", 1, False), ("bigquery_yellow_tripdata", 1, False),
                              ("warehouse", 1, False)]

    finish(instance.execute_month("2020-04-01"))

    assert instance.run_statuses() == ["SUCCESS"]
    assert instance.month_rows() == {"green_tripdata_2020-04.csv": 35_612}
    materializations = dict(instance.query(
        "SELECT asset_key, count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND partition = %s GROUP BY asset_key", ["2020-04-01"]))
    # the raw file twice: downloaded (pending), then published as the month's object by the merge
    assert materializations == {'["green_raw_file"]': 2, '["green_staging"]': 1, '["green_tripdata"]': 1}


def test_a_duckdb_run_under_a_multi_host_launcher_fails_at_start_and_writes_nothing(pg, tmp_path):
    home = write_dagster_home(tmp_path / "dagster_home", DEPLOY / "dagster.docker.yaml")
    env = dagster_env(home, pg.env(pg.create_database("docker_launcher")), TAXI_HOME=str(tmp_path / "taxi"),
                      TAXI_SOURCE_URL=MIRROR_URL, TAXI_SOURCE="release", TAXI_DOCKER_NETWORK="taxi_pipeline")
    done = subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "taxi_pipeline.definitions",
                           "-j", "green_taxi_job", "--tags", json.dumps({"dagster/partition": "2019-01-01"})],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode != 0 and "cannot run under DockerRunLauncher" in done.stdout + done.stderr
    assert not (tmp_path / "taxi").exists()


def test_four_months_at_once_on_fresh_databases_take_turns_at_the_warehouse(pg, tmp_path):
    """Four `dagster job execute` processes of four months, started together, on three fresh
    databases: every run succeeds (no first-use race on the pool's limit), every month has its
    exact rows, and the runs did wait for each other at the warehouse.

    DuckDB's own file lock is what keeps the writers one at a time: a step that finds the file
    locked waits for it (`DuckDBWarehouse._connect_waiting_for_lock`). Staging takes no pool slot
    (`LocalTarget.pools`); the merges share the `warehouse` pool's one slot, which is a queue, not
    a lock: on Postgres, Dagster's claim is check-then-act in autocommit mode
    (`has_unassigned_slots`, then `add_pending_step(should_assign=...)`; and
    `_claim_concurrency_slot`'s `SELECT ... FOR UPDATE SKIP LOCKED` holds its row lock for that
    one statement only: dagster/_core/storage/event_log/sql_event_log.py, 1.13; the same finding
    in review of https://github.com/dagster-io/dagster/pull/34092), so two steps claiming in the
    same instant can both run (seen: two steps overlapping by 1.4 s). Exactness never rests on the
    pool; the overlaps it lets through are counted, not forbidden."""
    report, waited = [], 0
    for attempt in range(3):
        instance = new_instance(pg, tmp_path / f"four_at_once_{attempt}")
        procs = [instance.execute_month(partition) for partition in GREEN]
        for proc in procs:
            finish(proc)

        assert instance.run_statuses() == ["SUCCESS"] * 4
        assert instance.month_rows() == dict(GREEN.values())
        assert instance.pool_steps("warehouse") == {"green_tripdata"}  # the merge
        merges = instance.step_windows({"green_tripdata"})
        assert len(merges) == 4
        overlaps = sum(after[0] < before[1] for before, after in itertools.combinations(merges, 2))
        runs = instance.query("SELECT start_time, end_time FROM runs")
        together = max(sum(s <= at < e for s, e in runs) for at, _ in runs)
        assert together >= 2, runs  # the runs did overlap
        [(blocked,)] = instance.query("SELECT count(*) FROM event_logs WHERE event LIKE %s",
                                      ["%blocked by limit for pool warehouse%"])
        [(lock_waits,)] = instance.query("SELECT count(*) FROM event_logs WHERE event LIKE %s",
                                         ["%warehouse % is locked by %"])
        waited += blocked + lock_waits
        assert instance.query("SELECT count(*) FROM concurrency_limits WHERE using_default_limit") == [(0,)]
        report.append(f"db {attempt}: 4/4 SUCCESS and exact, {together} runs at once, {lock_waits} waits for "
                      f"DuckDB's lock, {blocked} merges blocked by the pool, {overlaps} merges it let overlap")
    print("\n" + "\n".join(report))
    assert waited > 0  # four runs at once on one file: some step found it taken, and waited


@dataclass
class Stack:
    """A gRPC code server, and a webserver + daemon that reach it through deploy/workspace.grpc.yaml."""

    instance: Instance
    url: str
    grpc_port: int
    env: dict[str, str]  # the webserver's and the daemon's: the instance and the workspace, no TAXI_*

    def graphql(self, document: str, variables: dict | None = None) -> dict:
        return graphql(self.url, document, variables)

    def wait_for_runs(self, count: int, tag: tuple[str, str], timeout_s: float = 240) -> list[tuple]:
        """(run id, status) of the runs with this tag, read from Postgres, once `count` have finished."""
        deadline = time.monotonic() + timeout_s
        while True:
            runs = self.instance.query("SELECT r.run_id, r.status FROM runs r JOIN run_tags t USING (run_id) "
                                       "WHERE t.key = %s AND t.value = %s", list(tag))
            if len(runs) >= count and all(s in ("SUCCESS", "FAILURE", "CANCELED") for _, s in runs):
                return runs
            assert time.monotonic() < deadline, f"runs {tag} not done in {timeout_s} s: {runs}"
            time.sleep(1)

    def origin(self, run_id: str) -> DagsterRun:
        [(body,)] = self.instance.query("SELECT run_body FROM runs WHERE run_id = %s", [run_id])
        return deserialize_value(body, DagsterRun)


def _wait_for_code_server(port: int, timeout_s: float = 120) -> DagsterGrpcClient:
    client, deadline = DagsterGrpcClient(port=port, host="127.0.0.1"), time.monotonic() + timeout_s
    while True:
        try:
            client.list_repositories()
            return client
        except Exception:  # noqa: BLE001 - not listening yet, or still loading the code
            assert time.monotonic() < deadline, f"code server on port {port} not up in {timeout_s} s"
            time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(pg, tmp_path_factory):
    folder = tmp_path_factory.mktemp("grpc_stack")
    instance = new_instance(pg, folder)
    grpc_port, web_port = free_port(), free_port()
    # Only the code server gets the pipeline's variables: runs start from it, as in every
    # multi-machine deployment; the webserver and the daemon need the instance and the workspace.
    stack_env = {k: v for k, v in instance.env.items() if not k.startswith("TAXI_")}
    stack_env |= {"DAGSTER_GRPC_HOST": "127.0.0.1", "DAGSTER_GRPC_PORT": str(grpc_port)}
    logs = {name: folder / f"{name}.log" for name in ("code_server", "webserver", "daemon")}
    code_server = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port),
                   "-m", "taxi_pipeline.definitions", "--location-name", "taxi_pipeline",
                   "--container-image", IMAGE]
    workspace, url = ["-w", str(DEPLOY / "workspace.grpc.yaml")], f"http://127.0.0.1:{web_port}"
    webserver = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), *workspace]
    try:
        with service(code_server, instance.env, logs["code_server"]):
            current = deserialize_value(_wait_for_code_server(grpc_port).get_current_image())
            assert current.current_image == IMAGE
            with service(webserver, stack_env, logs["webserver"], ready_url=f"{url}/server_info"), \
                 service([str(BIN / "dagster-daemon"), "run", *workspace], stack_env, logs["daemon"]):
                yield Stack(instance, url, grpc_port, stack_env)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        for name, log in logs.items():
            if log.exists():
                shutil.copy(log, ARTIFACTS / f"postgres_{name}.log")


GROUP_ASSETS = """query GroupAssets($group: AssetGroupSelector) {
  assetNodes(group: $group) { assetKey { path } } }"""
LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) { __typename
    ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def _assert_origin_is_the_code_server(stack: Stack, run_id: str) -> None:
    run = stack.origin(run_id)
    location = run.remote_job_origin.repository_origin.code_location_origin
    assert isinstance(location, GrpcServerCodeLocationOrigin), location
    assert (location.host, location.port) == ("127.0.0.1", stack.grpc_port)
    assert location.location_name == "taxi_pipeline"
    assert run.job_code_origin.repository_origin.container_image == IMAGE  # what Docker / K8s would run


def test_a_ui_backfill_on_the_postgres_instance_tags_every_run_and_records_it_in_postgres(stack):
    started = time.monotonic()
    partitions = ["2019-01-01", "2019-10-01", "2020-04-01"]
    selector = {"groupName": "green", "repositoryName": "__repository__",
                "repositoryLocationName": "taxi_pipeline"}
    group = stack.graphql(GROUP_ASSETS, {"group": selector})["assetNodes"]
    assert len(group) >= 3  # raw file, staging table, main table
    result = stack.graphql(LAUNCH_BACKFILL, {"backfillParams": {
        "assetSelection": [node["assetKey"] for node in group],  # the whole `green` group, as in the UI
        "partitionNames": partitions, "fromFailure": False,
        "tags": [{"key": "dagster/from_ui", "value": "true"}],  # no backfill tag: the code adds it
    }})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill_id = result["backfillId"]

    runs = stack.wait_for_runs(3, ("dagster/backfill", backfill_id))

    assert sorted(status for _, status in runs) == ["SUCCESS"] * 3
    instance, run_ids = stack.instance, [run_id for run_id, _ in runs]
    months = []
    for run_id in run_ids:
        tags = dict(instance.query("SELECT key, value FROM run_tags WHERE run_id = %s", [run_id]))
        assert tags["taxi"] == "green" and tags["backfill"] == "true", tags
        assert tags["file"] == GREEN[tags["dagster/partition"]][0], tags
        months.append(tags["dagster/partition"])
        _assert_origin_is_the_code_server(stack, run_id)
    assert sorted(months) == partitions
    # RUN_SUCCESS is stored under its old name
    [(successes,)] = instance.query(
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'PIPELINE_SUCCESS' AND run_id = ANY(%s)",
        [run_ids])
    assert successes == 3
    deadline = time.monotonic() + 60
    while (status := instance.query("SELECT status FROM bulk_actions WHERE key = %s", [backfill_id])) != [
            ("COMPLETED_SUCCESS",)]:
        assert time.monotonic() < deadline, status
        time.sleep(1)
    expected, loaded = {GREEN[p][0]: GREEN[p][1] for p in partitions}, instance.month_rows()
    assert {name: loaded.get(name) for name in expected} == expected
    print(f"\nUI backfill through the code server: 3 runs SUCCESS in {time.monotonic() - started:.0f} s")


def test_a_run_launched_through_the_grpc_workspace_runs_in_the_code_server(stack):
    tags = json.dumps({"dagster/partition": "2020-10-01", "launched_by": "grpc-test"})
    launched = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-w", str(DEPLOY / "workspace.grpc.yaml"),
         "-j", "green_taxi_job", "--tags", tags],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120, check=False)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]

    [(run_id, status)] = stack.wait_for_runs(1, ("launched_by", "grpc-test"))

    assert status == "SUCCESS"
    _assert_origin_is_the_code_server(stack, run_id)
    assert stack.instance.month_rows()["green_tripdata_2020-10.csv"] == 95_120


# The deploy files, loaded by Dagster where Dagster reads them and checked against each other. The
# image and the Compose file also run for real on a Docker engine: test_deploy.py (-m deploy).

def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _helm_instance(values: dict) -> dict:
    """The Dagster instance parts of the Helm values, rendered the way the chart's templates
    (configmap-instance.yaml, helpers/instance/*.tpl) render them into dagster.yaml."""
    pg, k8s = values["postgresql"], values["runLauncher"]["config"]["k8sRunLauncher"]
    monitoring, retries = values["dagsterDaemon"]["runMonitoring"], values["dagsterDaemon"]["runRetries"]
    postgres = {"postgres_db": {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
        "params": pg["postgresqlParams"], "scheme": pg["postgresqlScheme"]}}
    runs, pools = values["concurrency"]["runs"], values["concurrency"]["pools"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queue = coordinator["config"]["queuedRunCoordinator"]
    return {
        **{f"{kind}_storage": {"module": f"dagster_postgres.{module}", "class": f"Postgres{cls}Storage",
                               "config": postgres}
           for kind, module, cls in (("run", "run_storage", "Run"), ("event_log", "event_log", "EventLog"),
                                     ("schedule", "schedule_storage", "Schedule"))},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": {
            "load_incluster_config": k8s["loadInclusterConfig"], "job_namespace": "taxi",
            "image_pull_policy": k8s["imagePullPolicy"], "service_account_name": "dagster",
            "dagster_home": "/opt/dagster/dagster_home", "instance_config_map": "dagster-instance",
            "postgres_password_secret": values["global"]["postgresqlSecretName"],
            "env_config_maps": ["dagster-pipeline-env", *(c["name"] for c in k8s["envConfigMaps"])],
            "env_secrets": [s["name"] for s in k8s["envSecrets"]], "env_vars": k8s["envVars"],
            "volume_mounts": k8s["volumeMounts"], "volumes": k8s["volumes"], "labels": k8s["labels"],
            "fail_pod_on_run_failure": k8s["failPodOnRunFailure"], "resources": k8s["resources"]}},
        # With `concurrency` set, the chart's queued coordinator renders only what is set besides.
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                            "config": {"dequeue_interval_seconds": queue["dequeueIntervalSeconds"]}},
        "concurrency": {
            "runs": {"max_concurrent_runs": runs["maxConcurrentRuns"],
                     "tag_concurrency_limits": runs["tagConcurrencyLimits"]},
            "pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]}},
        "run_monitoring": {"enabled": monitoring["enabled"],
                           "start_timeout_seconds": monitoring["startTimeoutSeconds"],
                           "poll_interval_seconds": monitoring["pollIntervalSeconds"]},
        "run_retries": {"enabled": retries["enabled"], "max_retries": retries["maxRetries"],
                        "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def test_every_deploy_file_has_the_same_queue_and_pools_as_the_laptop_instance():
    postgres = _yaml(DEPLOY / "dagster.postgres.yaml")["concurrency"]
    assert _yaml(DEPLOY / "dagster.docker.yaml")["concurrency"] == postgres
    assert _helm_instance(_yaml(DEPLOY / "helm" / "values.yaml"))["concurrency"] == postgres
    laptop = _yaml(ROOT / "dagster.yaml")["concurrency"]
    queues = [_yaml(path)["run_queue"] for path in (ROOT / "dagster.yaml", DEPLOY / "dagster.postgres.yaml",
                                                     DEPLOY / "dagster.docker.yaml")]
    assert queues == [{"dequeue_interval_seconds": 1}] * 3
    helm = _helm_instance(_yaml(DEPLOY / "helm" / "values.yaml"))["run_coordinator"]["config"]
    assert helm == queues[0]
    assert postgres["runs"]["max_concurrent_runs"] == laptop["runs"]["max_concurrent_runs"]
    assert postgres["pools"]["default_limit"] == laptop["pools"]["default_limit"]
    for limit in laptop["runs"]["tag_concurrency_limits"]:
        assert limit in postgres["runs"]["tag_concurrency_limits"]
    for key in ("run_monitoring", "run_retries"):  # the team instances watch and retry runs alike
        assert _yaml(DEPLOY / "dagster.postgres.yaml")[key] == _yaml(DEPLOY / "dagster.docker.yaml")[key]


def test_init_instance_sets_the_limit_of_every_pool_the_code_uses():
    """A pool left to the default limit is created by its first run, racily on Postgres (#33552)."""
    from taxi_pipeline.lib.colours import COLOURS
    from taxi_pipeline.lib.targets.gcp import GcpTarget
    from taxi_pipeline.lib.targets.local import LocalTarget

    used = {pool for target in (LocalTarget, GcpTarget) for colour in COLOURS.values()
            for pool in target.pools(colour).values() if pool}
    default = re.search(r"TAXI_POOL_LIMITS:-([^}]*)\}", (DEPLOY / "init-instance").read_text())[1]
    assert {pair.split("=")[0] for pair in default.split()} == used == {
        "warehouse", "bigquery_green_tripdata", "bigquery_yellow_tripdata"}


@pytest.fixture
def config_db(pg, monkeypatch) -> dict[str, str]:
    """A fresh database behind the DAGSTER_PG_* variables of this process (Dagster resolves them here)."""
    env = pg.env(pg.create_database(f"config_{free_port()}"))
    monkeypatch.setenv("TAXI_DOCKER_NETWORK", "taxi_pipeline")  # dagster.docker.yaml's launcher network
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


POSTGRES_STORAGE = ["PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"]


def _storage_classes(instance: DagsterInstance) -> list[str]:
    storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
    return [type(storage).__name__ for storage in storages]


@pytest.mark.parametrize(("file_name", "launcher"), [("dagster.postgres.yaml", "DefaultRunLauncher"),
                                                    ("dagster.docker.yaml", "DockerRunLauncher")])
def test_the_instance_files_load_on_postgres_and_only_the_docker_one_refuses_duckdb(
        config_db, tmp_path, file_name, launcher):
    with DagsterInstance.from_config(str(write_dagster_home(tmp_path, DEPLOY / file_name))) as instance:
        assert _storage_classes(instance) == POSTGRES_STORAGE
        assert instance.get_runs() == []  # a query through the configured connection
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 30
        assert type(instance.run_launcher).__name__ == launcher  # built without a Docker daemon
        check_single_host_target(instance, "bigquery")
        if launcher == "DefaultRunLauncher":
            check_single_host_target(instance, "duckdb")
        else:
            with pytest.raises(SingleHostTargetError, match="under DockerRunLauncher.*TAXI_TARGET=gcp"):
                check_single_host_target(instance, "duckdb")


def test_in_process_and_ephemeral_instances_keep_the_duckdb_target():
    with DagsterInstance.ephemeral() as instance:
        check_single_host_target(instance, "duckdb")  # SyncInMemoryRunLauncher: dg.materialize, tests
    check_single_host_target(None, "duckdb")  # resources built outside a run


def test_the_helm_values_render_to_an_instance_dagster_accepts_with_the_k8s_launcher(config_db, tmp_path):
    values = _yaml(DEPLOY / "helm" / "values.yaml")
    rendered = _helm_instance(values)
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):  # PG_HOST is a placeholder
        rendered[storage]["config"]["postgres_db"] |= {
            "hostname": config_db["DAGSTER_PG_HOST"], "port": int(config_db["DAGSTER_PG_PORT"]),
            "username": config_db["DAGSTER_PG_USER"], "db_name": config_db["DAGSTER_PG_DB"]}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert _storage_classes(instance) == POSTGRES_STORAGE
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 3
        launcher = instance.get_ref().run_launcher_data
        assert launcher.class_name == "K8sRunLauncher"
        checked = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), launcher.config_dict)
        assert checked.success, checked.errors
        with pytest.raises(SingleHostTargetError, match="K8sRunLauncher"):
            check_single_host_target(instance, "duckdb")
        check_single_host_target(instance, "bigquery")

    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"][:2] == ["-m", "taxi_pipeline.definitions"]
    assert {"name": "TAXI_TARGET", "value": "gcp"} in deployment["env"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]  # run pods get the env and the key
    [init] = values["migrate"]["initContainers"]
    assert init["image"].split(":")[0] == deployment["image"]["repository"]
    assert init["command"] == ["/opt/taxi_pipeline/deploy/init-instance"]
    assert {"name": "DAGSTER_HOME", "value": _dockerfile_env()["DAGSTER_HOME"]} in init["env"]


def test_the_kubernetes_objects_in_the_helm_values_are_valid_kubernetes_api_objects():
    """The values' Kubernetes parts, parsed with the Kubernetes API's own models (the `kubernetes`
    client, generated from the API's OpenAPI spec; dagster-k8s's strict parser rejects unknown keys
    and wrong types). No `helm`, no chart, no cluster here: the chart's own keys and templates are
    not checked by a real tool (deploy/README.md, "What was not run")."""
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
    from kubernetes import client as k8s

    values = _yaml(DEPLOY / "helm" / "values.yaml")
    [deployment] = values["dagster-user-deployments"]["deployments"]
    [init] = values["migrate"]["initContainers"]
    k8s_launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    objects = [(k8s.V1PodSecurityContext, deployment["podSecurityContext"]),
               (k8s.V1ResourceRequirements, deployment["resources"]),
               (k8s.V1ResourceRequirements, k8s_launcher["resources"]),
               (k8s.V1Container, init),
               *((k8s.V1EnvVar, env) for env in deployment["env"]),
               *((k8s.V1EnvFromSource, {"secretRef": ref}) for ref in deployment["envSecrets"]),
               *((k8s.V1Volume, volume) for volume in deployment["volumes"]),
               *((k8s.V1VolumeMount, mount) for mount in deployment["volumeMounts"])]
    for model, value in objects:  # the values are the API's camelCase; the models' attributes snake_case
        assert isinstance(k8s_model_from_dict(model, k8s_snake_case_dict(model, value)), model)
    with pytest.raises(Exception, match="Unexpected keys"):  # the parser does reject a wrong key
        k8s_snake_case_dict(k8s.V1VolumeMount, {"name": "gcp-key", "mountpath": "/var/secrets/google"})


def _dockerfile_env() -> dict[str, str]:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    block = dockerfile.split("\nENV ")[1].split("\n\n")[0]
    return dict(re.findall(r"([A-Z][A-Z0-9_]+)=(\S+)", block))


def test_the_compose_file_wires_the_image_the_instance_and_the_launcher_together():
    compose, docker_instance = _yaml(DEPLOY / "docker-compose.yml"), _yaml(DEPLOY / "dagster.docker.yaml")
    services, launcher = compose["services"], docker_instance["run_launcher"]["config"]
    assert set(services) == {"postgres", "init_instance", "user_code", "webserver", "daemon"}
    instance_file = f"./dagster.docker.yaml:{_dockerfile_env()['DAGSTER_HOME']}/dagster.yaml:ro"
    for name in ("init_instance", "user_code", "webserver", "daemon"):
        assert instance_file in services[name]["volumes"], name
        assert services[name]["image"] == services["user_code"]["image"]
    assert services["init_instance"]["command"] == ["/opt/taxi_pipeline/deploy/init-instance"]
    assert services["user_code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == services["user_code"]["image"]
    assert services["user_code"]["environment"]["TAXI_TARGET"] == "gcp"
    for name in ("webserver", "daemon"):
        assert "deploy/workspace.grpc.yaml" in services[name]["command"]
        assert services[name]["environment"]["DAGSTER_GRPC_HOST"] == "user_code"
        assert services[name]["environment"]["DAGSTER_GRPC_PORT"] == "4000"
    # The launcher copies these from the daemon's environment, and fails a run if one is unset.
    assert set(launcher["env_vars"]) <= set(services["daemon"]["environment"])
    # Run containers join the compose network by name: every service is on the default network,
    # whose name the daemon passes to the launcher (dagster.docker.yaml reads TAXI_DOCKER_NETWORK).
    assert launcher["network"] == {"env": "TAXI_DOCKER_NETWORK"}
    assert "${TAXI_DOCKER_NETWORK:-taxi_pipeline}" in (DEPLOY / "docker-compose.yml").read_text()
    assert compose["networks"]["default"]["name"] == "taxi_pipeline"
    assert not any("networks" in service for service in services.values())  # an override may set network_mode
    key_folder = launcher["container_kwargs"]["volumes"][0].split(":")[1]
    assert services["daemon"]["environment"]["GOOGLE_APPLICATION_CREDENTIALS"].startswith(key_folder + "/")
    assert launcher["container_kwargs"]["volumes"][0] in services["user_code"]["volumes"]


def test_the_dockerfile_installs_the_pinned_project_with_the_postgres_extra_as_a_non_root_user():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-", dockerfile, re.MULTILINE)
    assert 'pip install ".[postgres]"' in dockerfile
    assert "RUN --mount=type=cache,target=/root/.cache/pip" in dockerfile  # pip's cache outside the image
    assert re.search(r"^USER 10001$", dockerfile, re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*?\])$", dockerfile, re.MULTILINE | re.DOTALL).group(1)
    assert json.loads(cmd.replace("\\\n", ""))[:5] == ["dagster", "code-server", "start", "-h", "0.0.0.0"]
    assert '"-m", "taxi_pipeline.definitions"' in cmd
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minor, patch = re.search(r"dagster==1\.(\d+)\.(\d+)", " ".join(project["dependencies"])).groups()
    for pin in project["optional-dependencies"]["postgres"]:  # the libraries move in lockstep: 1.13.N, 0.29.N
        assert re.fullmatch(rf"dagster-(postgres|docker|k8s)==0\.{int(minor) + 16}\.{patch}", pin)


def _env_names(node: object) -> set[str]:
    """Environment variable names a YAML document reads or sets: `{env: X}`, `${X}`, Compose
    `environment:` keys, Kubernetes `env:` lists, the launcher's `env_vars`."""
    names: set[str] = set()
    if isinstance(node, dict):
        if list(node) == ["env"] and isinstance(node["env"], str):
            names.add(node["env"])
        names |= set(node.get("environment", {}))
        names |= {item["name"] for item in node.get("env", []) if isinstance(item, dict)}
        names |= {item.split("=")[0] for item in node.get("env_vars", [])}
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            names |= _env_names(item)
    if isinstance(node, str):
        names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", node))
    return names


def test_every_environment_variable_of_the_deployment_is_documented():
    names = set(_dockerfile_env())
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            names |= _env_names(_yaml(path))
        elif path.name == "init-instance":
            names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", path.read_text()))
    assert {"DAGSTER_PG_PASSWORD", "DAGSTER_GRPC_PORT", "TAXI_POOL_LIMITS", "GCP_PROJECT_ID"} <= names
    readme = (DEPLOY / "README.md").read_text()
    assert [name for name in sorted(names) if f"`{name}`" not in readme] == []
