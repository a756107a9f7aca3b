"""The shipped deploy/docker-compose.yml, brought up by docker-compose (v1, Debian's) on the tests'
Docker engine, with deploy/docker-compose.loopback.yml (host networking, every server on
127.0.0.1) and a third file written here with what only the tests need: the emulators' and the
mirror's URLs, the schedule's test cron, and the run containers' extra variables through the code
server's `DAGSTER_CONTAINER_CONTEXT` (a Dagster feature: the launcher merges it into every run's
container). Run records are read from the deployment's Postgres with psycopg2, on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import yaml
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import deserialize_value

from taxi_pipeline_tests.helpers.docker_engine import Engine
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.graphql import graphql

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_PROJECT = "taxi_pipeline"  # the -p every command gives: names the Postgres volume
IMAGE = "taxi-pipeline:deploy-test"
DATASET = "zoomcamp_deploy"
PASSWORD = "taxi-deploy-test-password"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
CONTAINER_TAG = "docker/container_id"  # dagster_docker's DOCKER_CONTAINER_ID_TAG


@dataclass
class Deployment:
    engine: Engine
    folder: Path
    variables: dict[str, str]  # what Compose substitutes: the shell's / deploy/.env's role
    run_env: dict[str, str]  # the test-only variables of the code server and the run containers
    log: list[str] = field(default_factory=list)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.variables['DAGSTER_WEBSERVER_PORT']}"

    def write_test_override(self) -> Path:
        secrets = self.folder / "secrets"  # the key folder; the emulators need no key
        secrets.mkdir(exist_ok=True)
        mount = f"{secrets}:/run/secrets/taxi:ro"
        context = {"env_vars": [f"{k}={v}" for k, v in self.run_env.items()],
                   "docker": {"container_kwargs": {"volumes": [mount]}}}
        override = {"services": {"user_code": {
            "environment": {**self.run_env, "TAXI_SCHEDULE_CRON": "* * * * *", "TAXI_SENSOR_INTERVAL_S": "5",
                            "DAGSTER_CONTAINER_CONTEXT": json.dumps(context)},
            "volumes": [mount]}}}
        path = self.folder / "docker-compose.test.yml"
        path.write_text(yaml.safe_dump(override))
        return path

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        files = [DEPLOY / "docker-compose.yml", DEPLOY / "docker-compose.loopback.yml", self.write_test_override()]
        command = ["docker-compose", "-p", COMPOSE_PROJECT, *(a for f in files for a in ("-f", str(f))), *args]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, env={**self.engine.env, **self.variables}, capture_output=True,
                              text=True, timeout=timeout, check=False)
        self.log.append(f"$ docker-compose {' '.join(args)}  # {time.monotonic() - started:.1f} s, exit {done.returncode}")
        if check and done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        return done.stdout + done.stderr

    def up(self) -> float:
        started = time.monotonic()
        self.compose("up", "-d")
        self.wait_for_webserver()
        return time.monotonic() - started

    def wait_for_webserver(self, timeout_s: float = 180) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.web_url}/server_info", timeout=5) as response:
                    return json.load(response)
            except OSError:
                assert time.monotonic() < deadline, self.compose("logs", "--tail", "50", check=False)
                time.sleep(1)

    def graphql(self, document: str, variables: dict | None = None) -> dict:
        return graphql(self.web_url, document, variables)

    def query(self, sql: str, params: object = None) -> list[tuple]:
        con = psycopg2.connect(host="127.0.0.1", port=int(self.variables["DAGSTER_PG_PORT"]), user="dagster",
                               password=PASSWORD, dbname="dagster", connect_timeout=5)
        try:
            with con.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            con.close()

    def runs(self, key: str, value: str) -> list[tuple[str, str]]:
        """(run id, status) of the runs with this tag, from Postgres."""
        return self.query("SELECT r.run_id, r.status FROM runs r JOIN run_tags t USING (run_id) "
                          "WHERE t.key = %s AND t.value = %s ORDER BY r.create_timestamp", [key, value])

    def wait_for_runs(self, count: int, key: str, value: str, timeout_s: float = 300) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout_s
        while True:
            runs = self.runs(key, value)
            if len(runs) >= count and all(status in TERMINAL for _, status in runs):
                return runs
            assert time.monotonic() < deadline, f"runs {key}={value} not done in {timeout_s} s: {runs}"
            time.sleep(1)

    def tags(self, run_id: str) -> dict[str, str]:
        return dict(self.query("SELECT key, value FROM run_tags WHERE run_id = %s", [run_id]))

    def run(self, run_id: str) -> DagsterRun:
        [(body,)] = self.query("SELECT run_body FROM runs WHERE run_id = %s", [run_id])
        return deserialize_value(body, DagsterRun)

    def container(self, run_id: str) -> dict:
        """The run's container, as the Docker engine reports it, by the id the launcher tagged."""
        container_id = self.tags(run_id)[CONTAINER_TAG]
        return json.loads(self.engine.docker("inspect", container_id))[0]

    def event_count(self, run_ids: list[str], event_type: str) -> int:
        [(count,)] = self.query("SELECT count(*) FROM event_logs WHERE run_id = ANY(%s) AND dagster_event_type = %s",
                                [run_ids, event_type])
        return count

    def stop_sensor(self, name: str, workspace: str) -> None:
        """Stops a sensor and waits out a tick already under way: a tick that started before the stop
        still launches what it finds, even a month published after the stop."""
        self.cli("daemon", "dagster", "sensor", "stop", name, "-w", workspace)
        time.sleep(5)  # a daemon loop that read the state just before the stop has created its tick by now
        deadline = time.monotonic() + 120
        while self.query("SELECT 1 FROM job_ticks WHERE type = 'SENSOR' AND status = 'STARTED' "
                         "AND tick_body LIKE %s", [f'%"{name}"%']):
            assert time.monotonic() < deadline, f"a tick of {name} still under way after 120 s"
            time.sleep(1)

    def cli(self, service: str, *args: str) -> str:
        """A command in a service's container, as a team runs one: `docker-compose exec`."""
        return self.compose("exec", "-T", service, *args, timeout=300)


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


LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) { __typename
    ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def launch_backfill(stack: Deployment, by_colour: dict[str, list[str]]) -> str:
    params = {"partitionsByAssets": [
        {"assetKey": {"path": [f"{colour}_{asset}"]}, "partitions": {"ranges": [{"start": m, "end": m} for m in months]}}
        for colour, months in by_colour.items() for asset in ("raw_file", "staging", "tripdata")],
        "fromFailure": False, "tags": [{"key": "dagster/from_ui", "value": "true"}]}
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


def launch(stack: Deployment, job: str, **tags: str) -> str:
    """`dagster job launch` as a team runs it on the deployment: in the daemon's container."""
    return stack.cli("daemon", "dagster", "job", "launch", "-w", "deploy/workspace.grpc.yaml", "-j", job,
                     "--tags", json.dumps(tags))


def run_failure_message(stack: Deployment, run_id: str, width: int = 300) -> str:
    """What Dagster recorded when the run failed: every step failure with the chain of its error's
    causes (the step's own message only says which op failed), then the run failure and the
    engine events around it."""
    rows = stack.query("SELECT dagster_event_type, event FROM event_logs WHERE run_id = %s AND dagster_event_type IN "
                       "('STEP_FAILURE', 'PIPELINE_FAILURE', 'ENGINE_EVENT') ORDER BY id", [run_id])
    steps = [row for row in rows if row[0] == "STEP_FAILURE"]
    kept = steps + [row for row in rows if row[0] != "STEP_FAILURE"][-3:]
    messages = []
    for kind, body in kept:
        event = json.loads(body)
        dagster_event = event.get("dagster_event") or {}
        error = _error_chain((dagster_event.get("event_specific_data") or {}).get("error"))
        text = event.get("user_message") or dagster_event.get("message") or ""
        messages.append(f"{kind}: {text[:width]} {error[:width]}".rstrip())
    return " | ".join(messages)


def _error_chain(error: dict | None) -> str:
    """A serialized error's message and its causes', innermost last."""
    parts = []
    while error:
        parts.append((error.get("message") or "").strip())
        error = error.get("cause") or error.get("context")
    return " <- ".join(part for part in parts if part)


def backfill_report(stack: Deployment, backfill_id: str) -> str:
    """Why a backfill did not succeed, for the assertion's message: its stored error and each of its
    runs' status and failures."""
    [(status, body)] = stack.query("SELECT status, body FROM bulk_actions WHERE key = %s", [backfill_id])
    error = (json.loads(body).get("error") or {}).get("message") or ""
    lines = [f"backfill {backfill_id}: {status} {error[:2000]}".rstrip()]
    for run_id, run_status in stack.runs("dagster/backfill", backfill_id):
        tags = stack.tags(run_id)
        lines.append(f"  {tags.get('taxi')} {tags.get('dagster/partition')} run {run_id[:8]}: {run_status}")
        if run_status != "SUCCESS":
            lines.append(f"    {run_failure_message(stack, run_id, width=1500)}")
    return "\n".join(lines)
