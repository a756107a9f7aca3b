"""Racing runs of one month while the source changes under them, some killed: afterwards the month's
rows are exactly one served file's, and the month's object in the bucket is that very file.

Each run is a real `dagster job execute` process on one shared instance (SQLite), on the embedded
target (one DuckDB file) or on GCS + BigQuery (the emulators); the loopback source answers each
download with the next version of the month (the real head of green 2019-10, 1,308 rows, less 50,
100, ... rows: corrections). In the killed repetitions one run is SIGKILLed inside a step (the
download, staging or the merge, in turn, a random instant after the step starts), and one more
run of the month follows at once, as the next schedule tick or backfill would.
`TAXI_RACE_REPETITIONS` sets the repetitions of each kind on DuckDB (2 in the suite; 20 for the
issue's figures, about 11 minutes), `TAXI_RACE_GCP_REPETITIONS` on the emulators (1 in the suite).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from taxi_pipeline.lib.stores.local import LocalObjectStore
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, query, read_csv_gz, reference_ids, write_csv_gz

pytestmark = pytest.mark.faults

ROOT = Path(__file__).parents[1]
KEY, FILE = "2019-10-01", "green_tripdata_2019-10.csv"
OBJECT = f"green/{FILE}.gz"
REPETITIONS = int(os.environ.get("TAXI_RACE_REPETITIONS", "2"))
# On the emulators a repetition takes about 25 s (the run processes' Google clients, the load jobs).
GCP_REPETITIONS = int(os.environ.get("TAXI_RACE_GCP_REPETITIONS", "1"))


def _versions(folder: Path, count: int) -> list[tuple[bytes, set[str]]]:
    """The month's file as the source serves it at each download: its bytes and its rows' ids."""
    header, rows = read_csv_gz(MIRROR / OBJECT)
    versions = []
    for i in range(count):
        path = write_csv_gz(folder / f"v{i}" / f"{FILE}.gz", header, rows[: len(rows) - 50 * i])
        versions.append((path.read_bytes(), set(reference_ids(FILE, path))))
    return versions


def _serve_in_turn(server, versions: list[tuple[bytes, set[str]]]) -> None:
    def answer(body: bytes):
        def send(handler, path) -> bool:
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return True
        return send
    server.faults[:] = [answer(body) for body, _ in versions]


def _execute(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "taxi_pipeline.definitions",
             "-j", "green_taxi_job", "--tags", json.dumps({"dagster/partition": KEY})],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


STEPS = ("green_raw_file", "green_staging", "green_tripdata")


def _kill_inside(proc: subprocess.Popen, log: Path, step: str, rng: random.Random) -> None:
    """SIGKILLs `proc` a random instant after its log says `step` started (or once it ends)."""
    deadline = time.monotonic() + 120
    while f'Started execution of step "{step}"' not in log.read_text() and proc.poll() is None:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    time.sleep(rng.uniform(0, 0.4))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def _race(tmp_path: Path, env: dict[str, str], runs: int, kill: bool, exact, fresh,
          repetitions: int = REPETITIONS) -> list[int]:
    """The repetitions of one kind; `fresh(repetition)` gives a repetition its own target settings,
    `exact(versions)` says which version the month holds (and fails unless exactly one)."""
    rng = random.Random(runs * 10 + kill)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**env, "DAGSTER_HOME": str(dagster_home)}
    subprocess.run([str(Path(sys.executable).with_name("dagster")), "instance", "migrate"], env=env, check=True,
                   capture_output=True, timeout=120)
    mirror = tmp_path / "mirror"
    (mirror / "green").mkdir(parents=True)
    held = []
    with serve_folder(mirror) as server:
        env["TAXI_SOURCE_URL"] = server.url
        for repetition in range(repetitions):
            env.update(fresh(repetition))
            versions = _versions(tmp_path / f"versions{repetition}", runs + 1)
            _serve_in_turn(server, versions)
            (mirror / OBJECT).write_bytes(versions[-1][0])  # once every version was served
            logs = [tmp_path / f"run{repetition}_{i}.log" for i in range(runs)]
            procs = [_execute(env, log) for log in logs]
            if kill:
                victim = rng.randrange(runs)
                _kill_inside(procs[victim], logs[victim], STEPS[repetition % len(STEPS)], rng)
                procs.append(_execute(env, tmp_path / f"next{repetition}.log"))
                logs.append(tmp_path / f"next{repetition}.log")
            for proc in procs:
                proc.wait(300)
            if kill:
                assert procs[-1].returncode == 0, logs[-1].read_text()[-3000:]
            else:
                texts = [log.read_text() for log in logs]
                assert all("RUN_SUCCESS" in text for text in texts), "\n".join(t[-2000:] for t in texts)
            held.append(exact(versions))
    return held


def _report(target: str, runs: int, kill: bool, held: list[int], started: float) -> None:
    print(f"\n{target}, {runs} runs{', one killed inside a step' if kill else ''}: {len(held)} repetitions in "
          f"{time.monotonic() - started:.0f} s; the month held version {sorted(set(held))}")


@pytest.mark.parametrize("runs", [2, 3])
@pytest.mark.parametrize("kill", [False, True], ids=["no kill", "one killed"])
def test_racing_runs_of_a_month_leave_exactly_one_served_file_in_the_warehouse_and_the_bucket(runs, kill, tmp_path):
    homes = {}

    def fresh(repetition: int) -> dict[str, str]:
        homes["now"] = tmp_path / f"home{repetition}"
        return {"TAXI_HOME": str(homes["now"])}

    def exact(versions) -> int:
        home = homes["now"]
        ids = {r[0] for r in query(home, "SELECT printf('%032x', unique_row_id) FROM zoomcamp.green_tripdata "
                                         "WHERE filename = ?", [FILE])}
        [(count,)] = query(home, "SELECT count(*) FROM zoomcamp.green_tripdata WHERE filename = ?", [FILE])
        stored = LocalObjectStore(home / "bucket").stat(OBJECT)
        return _one_version(versions, ids, count, stored.metadata["md5"] if stored else None)

    started = time.monotonic()
    held = _race(tmp_path, dict(os.environ), runs, kill, exact, fresh)
    _report("DuckDB", runs, kill, held, started)


@pytest.mark.gcp
@pytest.mark.parametrize("kill", [False, True], ids=["no kill", "one killed"])
def test_racing_runs_on_gcs_and_bigquery_leave_exactly_one_served_file(kill, tmp_path, gcp_emulators, bq):
    from google.cloud import storage

    from taxi_pipeline_tests.helpers.emulators import PROJECT

    names = {}

    def fresh(repetition: int) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:8]
        names.update(bucket=f"taxi-race-{suffix}", dataset=f"zoomcamp_race_{suffix}")
        return {"GCP_BUCKET_NAME": names["bucket"], "TAXI_DATASET": names["dataset"]}

    def exact(versions) -> int:
        table = f"`{PROJECT}.{names['dataset']}.green_tripdata`"
        ids = {r[0] for r in bq.query(f"SELECT TO_HEX(unique_row_id) FROM {table}").result()}
        [(count,)] = list(bq.query(f"SELECT COUNT(*) FROM {table}").result())
        blob = storage.Client(project=PROJECT).bucket(names["bucket"]).get_blob(OBJECT)
        return _one_version(versions, ids, count, (blob.metadata or {}).get("md5") if blob else None)

    env = {**os.environ, **gcp_emulators, "TAXI_TARGET": "gcp"}
    started = time.monotonic()
    held = _race(tmp_path, env, 2, kill, exact, fresh, GCP_REPETITIONS)
    _report("GCS + BigQuery", 2, kill, held, started)


def _one_version(versions: list[tuple[bytes, set[str]]], ids: set[str], count: int, object_md5: str | None) -> int:
    """The one version whose rows the month holds exactly, and whose bytes are the month's object."""
    held = [i for i, (_, version_ids) in enumerate(versions) if version_ids == ids]
    assert len(held) == 1 and count == len(ids), (len(ids), count, [len(v) for _, v in versions])
    assert object_md5 == hashlib.md5(versions[held[0]][0]).hexdigest(), (held, object_md5)
    return held[0]
