"""End to end, as a user runs it: a real `dagster-webserver` and `dagster-daemon` on 127.0.0.1 with a
temporary DAGSTER_HOME (the project's dagster.yaml), a loopback HTTP mirror of real TLC rows, the
GraphQL mutation the UI's backfill launcher sends, the `dagster job backfill` / `launch` CLI, a
daemon-driven schedule tick, and headless Chromium on the asset's partitions page. Both servers
are stopped by the fixture that started them (their whole process groups), even on failure.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from taxi_pipeline.lib.colours import GREEN, YELLOW
from taxi_pipeline_tests.helpers.graphql import graphql
from taxi_pipeline_tests.helpers.servers import serve_folder, stop_process_group, wait_for_webserver
from taxi_pipeline_tests.helpers.support import MIRROR, TLC, query, read_csv_gz, write_csv_gz

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL_DONE = {"COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED", "COMPLETED"}
GREEN_2020 = [f"2020-{m:02d}-01" for m in range(1, 13)]


def _previous_month(today: dt.date) -> dt.date:
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def _months_ago(count: int) -> dt.date:
    month = dt.datetime.now(dt.UTC).date()
    for _ in range(count):
        month = _previous_month(month)
    return month


def _csv_name(colour, month: dt.date) -> str:
    return f"{colour.name}_tripdata_{month:%Y-%m}.csv"


def build_mirror(root: Path) -> dict[str, int]:
    """Real months where we have them; the others generated from real rows (distinct slices of
    green 2020-10). The TLC's flat folder, `tlc/`, serves the month that just ended (a real TLC
    file under that month's name). Returns the data rows of every file, by file name."""
    shutil.copytree(MIRROR, root)
    header, october = read_csv_gz(MIRROR / "green" / "green_tripdata_2020-10.csv.gz")
    generated = [f"2020-{m:02d}" for m in range(1, 13) if m not in (4, 10)] + ["2019-02", "2019-03"]
    for i, month in enumerate(generated):
        write_csv_gz(root / "green" / f"green_tripdata_{month}.csv.gz", header, october[i * 1500 : i * 1500 + 1200])
    rows = {path.name.removesuffix(".gz"): len(read_csv_gz(path)[1]) for path in root.rglob("*.csv.gz")}
    (root / "tlc").mkdir()
    latest = f"green_tripdata_{_months_ago(1):%Y-%m}.parquet"
    shutil.copy(TLC / "green_tripdata_2023-02.parquet", root / "tlc" / latest)  # for the schedule / sensor
    return {**rows, latest: 64_809}


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    taxi_home: Path
    rows: dict[str, int]
    mirror: Path

    def graphql(self, document: str, variables: dict | None = None) -> dict:
        return graphql(self.url, document, variables)

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "dagster"), *args], check=False, cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout + done.stderr

    def runs(self, **tags: str) -> list[dict]:
        data = self.graphql(RUNS, {"filter": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}})
        return data["runsOrError"]["results"]

    def wait_for_runs(self, count: int, timeout_s: float = 300, **tags: str) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.runs(**tags)
            if len(runs) >= count and all(r["status"] in TERMINAL for r in runs):
                return runs
            time.sleep(2)
        raise AssertionError(f"runs {tags} not done in {timeout_s} s: {[r['status'] for r in self.runs(**tags)]}")

    def ticks(self, kind: str, name: str, after: float) -> list[dict]:
        """A schedule's or a sensor's ticks since `after`, as the daemon recorded them."""
        field, state = {"schedule": ("scheduleOrError", "scheduleState"), "sensor": ("sensorOrError", "sensorState")}[kind]
        document = TICKS.replace("FIELD", field).replace("STATE", state).replace("KIND", kind).replace(
            "TYPE", kind.capitalize())
        selector = {**REPOSITORY, f"{kind}Name": name}
        data = self.graphql(document, {"selector": selector, "after": after})[field]
        assert data.get(state) is not None, data
        return data[state]["ticks"]

    def wait_for_ticks(self, kind: str, name: str, after: float, count: int, timeout_s: float = 180) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ticks = [t for t in self.ticks(kind, name, after) if t["status"] != "STARTED"]
            if len(ticks) >= count:
                return ticks
            time.sleep(2)
        raise AssertionError(f"{kind} {name}: fewer than {count} ticks in {timeout_s} s: {self.ticks(kind, name, after)}")

    def month_rows(self, colour) -> dict[str, int]:
        return dict(query(self.taxi_home, f"SELECT filename, count(*) FROM zoomcamp.{colour.main_table} GROUP BY 1"))


RUNS = """query Runs($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status jobName startTime endTime tags { key value } } } } }"""
LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) { __typename
    ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
    ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } } }"""
REPOSITORY = {"repositoryLocationName": "taxi_pipeline", "repositoryName": "__repository__"}
TICKS = """query Ticks($selector: TYPESelector!, $after: Float) { FIELD(KINDSelector: $selector) {
  __typename ... on PythonError { message }
  ... on TYPE { STATE { ticks(afterTimestamp: $after, limit: 200) { status skipReason timestamp error { message } } } } } }"""
MATERIALIZED = """query Materialized($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  ... on AssetNode { partitionStats { numMaterialized numPartitions } } } }"""
BACKFILL = """query Backfill($backfillId: String!) { partitionBackfillOrError(backfillId: $backfillId) {
  ... on PartitionBackfill { status isAssetBackfill numPartitions } } }"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    rows = build_mirror(root / "mirror")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    with serve_folder(root / "mirror") as mirror:
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "TAXI_HOME": str(root / "taxi"),
               "TAXI_SOURCE_URL": mirror.url, "TAXI_TLC_URL": f"{mirror.url}/tlc",
               "TAXI_SCHEDULE_CRON": "* * * * *", "TAXI_SENSOR_INTERVAL_S": "5"}
        subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True)
        port = _free_port()
        logs = {name: open(root / f"{name}.log", "wb") for name in ("webserver", "daemon")}  # noqa: SIM115 - closed when the stack stops
        procs = [
            subprocess.Popen([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
                             cwd=ROOT, env=env, stdout=logs["webserver"], stderr=subprocess.STDOUT, start_new_session=True),
            subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                             cwd=ROOT, env=env, stdout=logs["daemon"], stderr=subprocess.STDOUT, start_new_session=True),
        ]
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_webserver(url, root / "webserver.log", procs[0], timeout_s=120)
            yield Stack(url, env, root / "taxi", rows, root / "mirror")
        finally:
            for proc in procs:
                stop_process_group(proc)
            for log in logs.values():
                log.close()
            ARTIFACTS.mkdir(exist_ok=True)
            for name in logs:
                shutil.copy(root / f"{name}.log", ARTIFACTS / f"e2e_{name}.log")


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def _launch_backfill(stack: Stack, params: dict) -> str:
    result = stack.graphql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def _wait_for_backfill(stack: Stack, backfill_id: str, timeout_s: float = 420) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backfill = stack.graphql(BACKFILL, {"backfillId": backfill_id})["partitionBackfillOrError"]
        if backfill["status"] in BACKFILL_DONE:
            return backfill
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} still {backfill['status']} after {timeout_s} s")


def _assert_backfill_runs(stack: Stack, colour, runs: list[dict], partitions: list[str]) -> None:
    assert sorted(_tags(r)["dagster/partition"] for r in runs) == partitions
    for run in runs:
        tags = _tags(run)
        month = dt.date.fromisoformat(tags["dagster/partition"])
        assert run["status"] == "SUCCESS", run
        assert tags["backfill"] == "true" and tags["taxi"] == colour.name
        assert tags["file"] == _csv_name(colour, month) and tags["source"] == "release"
    loaded = stack.month_rows(colour)
    for partition in partitions:
        file_name = _csv_name(colour, dt.date.fromisoformat(partition))
        assert loaded[file_name] == stack.rows[file_name], file_name


def test_a_ui_asset_backfill_of_green_2020_loads_12_months_each_run_tagged(stack):
    started = time.monotonic()
    backfill_id = _launch_backfill(stack, {
        "assetSelection": [{"path": [key]} for key in ("green_raw_file", "green_staging", "green_tripdata")],
        "partitionNames": GREEN_2020, "fromFailure": False,
        "tags": [{"key": "dagster/from_ui", "value": "true"}],  # no backfill tag: the code adds it
    })
    assert _wait_for_backfill(stack, backfill_id)["status"] == "COMPLETED_SUCCESS"
    runs = stack.runs(**{"dagster/backfill": backfill_id})
    assert len(runs) == 12
    _assert_backfill_runs(stack, GREEN, runs, GREEN_2020)
    print(f"UI asset backfill: 12 runs in {time.monotonic() - started:.0f} s")
    # The analytics models follow: their sensor waits for the backfill to end, then builds once.
    [build] = stack.wait_for_runs(1, timeout_s=180, taxi="analytics")
    assert build["status"] == "SUCCESS" and _tags(build)["trigger"] == "analytics_sensor", build
    assert build["startTime"] >= max(r["endTime"] for r in runs)
    fact = dict(query(stack.taxi_home, "SELECT filename, count(*) FROM zoomcamp.fct_trips GROUP BY 1"))
    for name in (_csv_name(GREEN, dt.date.fromisoformat(p)) for p in GREEN_2020):
        assert fact[name] == stack.rows[name], name
    print(f"then one analytics build, {build['endTime'] - build['startTime']:.0f} s")


def test_a_ui_job_page_backfill_tags_its_runs_too(stack):
    partitions = ["2020-01-01", "2020-07-01"]
    backfill_id = _launch_backfill(stack, {
        "selector": {"partitionSetName": "yellow_taxi_job_partition_set", "repositorySelector": {
            "repositoryLocationName": "taxi_pipeline", "repositoryName": "__repository__"}},
        "partitionNames": partitions, "fromFailure": False,
        "tags": [{"key": "dagster/from_ui", "value": "true"}],
    })
    _wait_for_backfill(stack, backfill_id)
    runs = stack.wait_for_runs(2, **{"dagster/backfill": backfill_id})
    _assert_backfill_runs(stack, YELLOW, runs, partitions)


def test_the_cli_backfill_of_three_months(stack):
    started = time.monotonic()
    # No --tags: `backfill=true` must come from the code (run_tags.tag_run), not from the command.
    output = stack.cli("job", "backfill", "-w", "workspace.yaml", "-j", "green_taxi_job", "--from", "2019-01-01",
                       "--to", "2019-03-01", "--noprompt")
    backfill_id = output.split("Launched backfill job `")[1].split("`")[0] if "Launched backfill job `" in output else None
    # Selected by Dagster's own tags, never by the one under test.
    tags = {"dagster/backfill": backfill_id} if backfill_id else {"dagster/partition_set": "green_taxi_job_partition_set"}
    runs = [r for r in stack.wait_for_runs(3, **tags) if "dagster/backfill" in _tags(r)]
    _assert_backfill_runs(stack, GREEN, runs, ["2019-01-01", "2019-02-01", "2019-03-01"])
    print(f"CLI backfill: 3 runs in {time.monotonic() - started:.0f} s")


def test_a_cli_launch_is_dequeued_by_the_daemon(stack):
    started = time.monotonic()
    stack.cli("job", "launch", "-w", "workspace.yaml", "-j", "yellow_taxi_job",
              "--tags", '{"dagster/partition": "2021-01-01", "launched_by": "e2e"}')
    [run] = stack.wait_for_runs(1, launched_by="e2e")
    tags = _tags(run)
    assert run["status"] == "SUCCESS" and run["jobName"] == "yellow_taxi_job"
    assert tags["taxi"] == "yellow" and tags["file"] == "yellow_tripdata_2021-01.csv" and "backfill" not in tags
    assert stack.month_rows(YELLOW)["yellow_tripdata_2021-01.csv"] == 22_792
    print(f"CLI launch: 1 run in {time.monotonic() - started:.0f} s")


def test_the_daemon_loads_the_month_that_just_ended_once(stack):
    """The schedule (every minute here) and the sensor (every 5 s) both see the month that just
    ended, published at the TLC mirror: whichever ticks first launches it, the other never does."""
    month = _months_ago(1)
    key, name = f"{month:%Y-%m-%d}", f"green_tripdata_{month:%Y-%m}.parquet"
    [run] = stack.wait_for_runs(1, timeout_s=150, **{"dagster/partition": key, "taxi": "green"})
    tags = _tags(run)
    assert run["status"] == "SUCCESS", run
    assert tags["trigger"] in ("schedule", "sensor") and "backfill" not in tags
    assert (tags["file"], tags["source"]) == (name, "tlc")
    assert stack.month_rows(GREEN)[name] == stack.rows[name]
    loaded_at = time.time()
    # Ticks after the load, read back as the daemon recorded them: each skipped, with a reason,
    # none failed (a dead daemon records none; a tick that raises records FAILURE).
    for kind, colour_name, count in (("schedule", "green", 1), ("sensor", "green", 3),
                                     ("schedule", "yellow", 1), ("sensor", "yellow", 3)):
        ticks = stack.wait_for_ticks(kind, f"{colour_name}_taxi_{kind}", loaded_at, count)
        assert {t["status"] for t in ticks} == {"SKIPPED"}, (kind, colour_name, ticks)
        assert all(t["skipReason"] and t["error"] is None for t in ticks), ticks
        if colour_name == "yellow":  # no yellow file for that month in the mirror
            assert any("not published" in t["skipReason"] for t in ticks), ticks
    assert len(stack.runs(**{"dagster/partition": key, "taxi": "green"})) == 1
    assert stack.runs(**{"dagster/schedule_name": "yellow_taxi_schedule"}) == []
    assert stack.runs(taxi="yellow", trigger="sensor") == []


def test_the_sensor_loads_a_month_when_it_is_published_and_again_when_it_is_corrected(stack):
    month = _months_ago(5)  # inside the sensor's look-back (12 months), outside the schedule's (3)
    key, name = f"{month:%Y-%m-%d}", f"green_tripdata_{month:%Y-%m}.parquet"
    assert stack.runs(**{"dagster/partition": key}) == []
    shutil.copy(TLC / "green_tripdata_2025-01.parquet", stack.mirror / "tlc" / name)  # published late
    [new] = stack.wait_for_runs(1, timeout_s=120, **{"dagster/partition": key, "reason": "new"})
    assert new["status"] == "SUCCESS" and _tags(new)["trigger"] == "sensor", new
    assert stack.month_rows(GREEN)[name] == 48_326
    corrected = pq.read_table(TLC / "green_tripdata_2025-01.parquet").slice(1_000, 40_000)
    pq.write_table(corrected, stack.mirror / "tlc" / name)  # the TLC replaces the file: rows removed
    [changed] = stack.wait_for_runs(1, timeout_s=120, **{"dagster/partition": key, "reason": "changed"})
    assert changed["status"] == "SUCCESS", changed
    assert stack.month_rows(GREEN)[name] == 40_000
    corrected_at = time.time()
    ticks = stack.wait_for_ticks("sensor", "green_taxi_sensor", corrected_at, 4)  # four more looks
    assert {t["status"] for t in ticks} == {"SKIPPED"} and all(t["error"] is None for t in ticks), ticks
    assert len(stack.runs(**{"dagster/partition": key})) == 2  # the unchanged month is not launched again


def test_the_ui_shows_the_backfilled_partitions_as_materialized(stack):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed: apt-get install chromium (.ci/run does)"
    stack.graphql("mutation { setNuxSeen }")
    page = f"{stack.url}/assets/green_tripdata?view=partitions"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1400,900", "--virtual-time-budget=20000"]
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "green_tripdata_partitions.png"
    profile = Path(stack.taxi_home).parent / "chromium-profile"
    subprocess.run([chromium, *flags, f"--user-data-dir={profile}", f"--screenshot={screenshot}", page],
                   capture_output=True, timeout=120, check=True)
    dom = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    # What Dagster itself says is materialized, and what the warehouse holds: the page must show
    # that very count, on the asset's own page, and not an error.
    data = stack.graphql(MATERIALIZED, {"key": {"path": ["green_tripdata"]}})["assetNodeOrError"]
    recorded = data["partitionStats"]["numMaterialized"]
    materialized = len(stack.month_rows(GREEN))
    assert recorded == materialized >= 15, (recorded, materialized)
    assert f"Materialized ({materialized})" in dom or f"{materialized} materialized" in dom.lower(), dom[-3000:]
    assert "green_tripdata" in dom and not any(e in dom for e in ("Something went wrong", "PythonError", "Unexpected")), dom[-3000:]
    from PIL import Image

    with Image.open(screenshot) as image:  # a real page has many colours; an error or blank page few
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert image.size == (1400, 900) and len(colours) > 50, len(colours)
