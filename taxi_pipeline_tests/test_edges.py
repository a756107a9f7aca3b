"""Nothing lost at the edges: a file that would empty or gut a loaded month is refused (kept under
`rejected/`, the month and its object as they were) unless the run says `accept_shrink=true`.
Real green 2020-04 (35,612 rows) and real TLC green 2025-01 (48,326 rows) are loaded first."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.shrink import ACCEPT_TAG
from taxi_pipeline.lib.stores.local import LocalObjectStore
from taxi_pipeline_tests.helpers.bad_inputs import failure
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import (
    MIRROR,
    TLC,
    load_month,
    make_resources,
    query,
    read_csv_gz,
    write_csv_gz,
)

pytestmark = pytest.mark.faults

APRIL, CSV = "2020-04-01", "green_tripdata_2020-04.csv"
JANUARY, PARQUET = "2025-01-01", "green_tripdata_2025-01.parquet"


def _month_rows(home: Path, file_name: str) -> int:
    return dict(query(home, "SELECT filename, count(*) FROM zoomcamp.green_tripdata GROUP BY 1")).get(file_name, 0)


def _served(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    shutil.copytree(MIRROR, root)
    shutil.copytree(TLC, root / "tlc")
    return root


def _shrunk_csv(root: Path, keep: int | None) -> None:
    header, rows = read_csv_gz(MIRROR / "green" / f"{CSV}.gz")
    write_csv_gz(root / "green" / f"{CSV}.gz", header, rows[:keep] if keep is not None else [])


def _shrunk_parquet(root: Path, keep: int) -> None:
    table = pq.read_table(TLC / PARQUET)
    pq.write_table(table.slice(0, keep), root / "tlc" / PARQUET)


CASES = {
    "csv header only": (APRIL, CSV, 35_612, lambda root: _shrunk_csv(root, 0), 0),
    "csv gutted to 10%": (APRIL, CSV, 35_612, lambda root: _shrunk_csv(root, 3_561), 3_561),
    "parquet with 0 rows": (JANUARY, PARQUET, 48_326, lambda root: _shrunk_parquet(root, 0), 0),
    "parquet gutted to 60%": (JANUARY, PARQUET, 48_326, lambda root: _shrunk_parquet(root, 29_000), 29_000),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_file_that_would_empty_or_gut_a_loaded_month_is_refused_until_accepted(case, tmp_path):
    partition, file_name, loaded, shrink, kept = CASES[case]
    root, home = _served(tmp_path), tmp_path / "home"
    with serve_folder(root) as server:
        resources = make_resources(home, server.url, f"{server.url}/tlc")
        assert load_month(GREEN, partition, resources).success
        store = LocalObjectStore(home / "bucket")
        month_key = f"green/{file_name}.gz" if file_name.endswith(".csv") else f"green/{file_name}"
        before = store.stat(month_key).metadata["md5"]
        shrink(root)
        result = load_month(GREEN, partition, resources, raise_on_error=False)
        assert not result.success
        step, message = failure(result)
        assert step == "green_staging", step
        assert f"{loaded:,} rows loaded from" in message and f"{ACCEPT_TAG}=true" in message, message
        assert _month_rows(home, file_name) == loaded  # the month as it was
        assert store.stat(month_key).metadata["md5"] == before  # and its object
        assert store.stat(f"green/rejected/{month_key.split('/')[1]}") is not None  # the file set aside
        print(f"\n{case}: {message}")

        # On purpose (the same file served again; the one under rejected/ is not read).
        assert load_month(GREEN, partition, resources, tags={ACCEPT_TAG: "true"}).success
        assert _month_rows(home, file_name) == kept


def test_a_small_correction_loads_without_asking(tmp_path):
    root, home = _served(tmp_path), tmp_path / "home"
    with serve_folder(root) as server:
        resources = make_resources(home, server.url)
        assert load_month(GREEN, APRIL, resources).success
        _shrunk_csv(root, 35_612 - 500)
        assert load_month(GREEN, APRIL, resources).success
    assert _month_rows(home, CSV) == 35_112


def test_an_empty_file_of_a_month_never_loaded_is_refused(tmp_path):
    root, home = _served(tmp_path), tmp_path / "home"
    _shrunk_csv(root, 0)
    with serve_folder(root) as server:
        result = load_month(GREEN, APRIL, make_resources(home, server.url), raise_on_error=False)
    assert not result.success
    assert "the file has no rows, and a month of trips is never empty" in failure(result)[1]


def test_part_files_of_killed_downloads_are_removed_by_the_next_run_of_the_month(tmp_path):
    import subprocess
    import sys

    root, home = _served(tmp_path), tmp_path / "home"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a process that has ended, as a killed one has
    leftovers = [home / "bucket" / "green" / "pending" / f"run{i}" / f".{CSV}.gz.{dead}.part" for i in range(3)]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1_048_576)
    live = home / "bucket" / "green" / "pending" / "live" / f".{CSV}.gz.{os.getpid()}.part"  # a download going on
    live.parent.mkdir(parents=True)
    live.write_bytes(b"x")
    with serve_folder(root) as server:
        assert load_month(GREEN, APRIL, make_resources(home, server.url)).success
    assert not any(path.exists() for path in leftovers) and live.exists()
    assert not (home / "bucket" / "green" / "pending" / "run0").exists()
    assert _month_rows(home, CSV) == 35_612


def test_a_source_that_trickles_ends_at_the_download_deadline_with_progress_in_the_log(tmp_path, monkeypatch):
    import time

    from taxi_pipeline.lib.sources import http

    monkeypatch.setattr(http._Clock, "EVERY_S", 1.0)
    root, home = _served(tmp_path), tmp_path / "home"
    body = (root / "green" / f"{CSV}.gz").read_bytes()

    def trickle(handler, path) -> bool:  # the real headers, then a byte every 0.2 s, for 8 s at most
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body[:40]:
            try:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            except OSError:
                break
            time.sleep(0.2)
        return True

    with serve_folder(root) as server:
        server.faults.append(trickle)
        started = time.monotonic()
        with dg.instance_for_test() as instance:
            result = load_month(GREEN, APRIL, make_resources(home, server.url, deadline_s=3.0), raise_on_error=False,
                                instance=instance)
            took = time.monotonic() - started
            progress = [r.user_message for r in instance.all_logs(result.run_id) if "bytes after" in r.user_message]
    step, message = failure(result)
    assert step == "green_raw_file"
    assert "still downloading after 3 s" in message and "TAXI_DOWNLOAD_DEADLINE_S" in message, message
    assert len(progress) >= 2, progress  # at least one a second here (a minute by default)
    assert not (home / "bucket" / "green" / f"{CSV}.gz").exists()
    print(f"\ntrickle: failed after {took:.1f} s: {message}")


def test_a_killed_cli_run_is_reaped_and_its_part_file_removed_by_the_next_run(tmp_path):
    """`dagster job execute` SIGKILLed mid-download: its run stays STARTED in the instance until
    the next look (a tick, fresh-start) finds its process gone and marks it FAILURE; the sensor
    then no longer waits for it, and the next run of the month removes the part file."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from taxi_pipeline.defs.launching import unfinished_run
    from taxi_pipeline.defs.runs import PROCESS_TAG

    root, home, dagster_home = _served(tmp_path), tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(Path(__file__).parents[1] / "dagster.yaml", dagster_home / "dagster.yaml")
    body = (root / "green" / f"{CSV}.gz").read_bytes()

    def trickle(handler, path) -> bool:  # half the file, then a byte a second, for 60 s at most
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body[: len(body) // 2])
            for byte in body[len(body) // 2: len(body) // 2 + 60]:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(1)
        except OSError:
            pass
        return True

    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "TAXI_HOME": str(home)}
    with serve_folder(root) as server:
        server.faults.append(trickle)
        env["TAXI_SOURCE_URL"] = server.url
        proc = subprocess.Popen([str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m",
                                 "taxi_pipeline.definitions", "-j", "green_taxi_job", "--tags",
                                 json.dumps({"dagster/partition": APRIL})], cwd=Path(__file__).parents[1], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pending = home / "bucket" / "green" / "pending"
        deadline = time.monotonic() + 60
        while not list(pending.rglob(".*.part")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            [run] = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.STARTED and PROCESS_TAG in run.tags
            assert unfinished_run(instance, GREEN, APRIL) is None  # what a tick asks: not waited for
            run = instance.get_run_by_id(run.run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
            [failed] = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_run_failure]
            assert "process" in failed.message and "is gone" in failed.message, failed.message
        done = subprocess.run([str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m",
                               "taxi_pipeline.definitions", "-j", "green_taxi_job", "--tags",
                               json.dumps({"dagster/partition": APRIL})], cwd=Path(__file__).parents[1], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not list(pending.rglob(".*.part")) if pending.exists() else True
    assert _month_rows(home, CSV) == 35_612


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _flip(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        block = f.read(4096)
        f.seek(path.stat().st_size // 2)
        f.write(bytes(b ^ 0xFF for b in block))


def _zero_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"\0" * 4096)


@pytest.mark.parametrize("damage", [_truncate, _flip, _zero_header], ids=["truncated", "corrupted", "no header"])
def test_a_damaged_warehouse_is_named_never_reused_and_left_as_it_is(damage, tmp_path):
    import hashlib

    root, home = _served(tmp_path), tmp_path / "home"
    with serve_folder(root) as server:
        resources = make_resources(home, server.url)
        assert load_month(GREEN, "2020-10-01", resources).success
        warehouse = home / "warehouse.duckdb"
        damage(warehouse)
        before = hashlib.md5(warehouse.read_bytes()).hexdigest()
        result = load_month(GREEN, "2020-10-01", resources, raise_on_error=False)
    assert not result.success
    step, message = failure(result)
    assert step == "green_staging", (step, message)
    assert f"{warehouse}: the warehouse file is damaged (" in message and "Restore it from a copy" in message, message
    assert hashlib.md5(warehouse.read_bytes()).hexdigest() == before  # the damaged bytes untouched
    print(f"\n{damage.__name__}: {message.splitlines()[0][:300]}")


def _csv_line(number: int, column: str, value: bytes) -> bytes:
    text = gzip.decompress((MIRROR / "green" / f"{CSV}.gz").read_bytes())
    lines = text.split(b"\r\n")
    fields = lines[number - 1].split(b",")
    fields[GREEN.header.index(column)] = value
    lines[number - 1] = b",".join(fields)
    return gzip.compress(b"\r\n".join(lines), mtime=0)


def _damaged_page() -> bytes:
    data = bytearray((TLC / PARQUET).read_bytes())
    start = pq.ParquetFile(TLC / PARQUET).metadata.row_group(0).column(3).data_page_offset
    for i in range(start, start + 12):
        data[i] ^= 0x5A
    return bytes(data)


# Refused while staging (DuckDB reads the file whole only there), each with what is wrong first.
STAGING_REFUSALS = {
    "quoted line break": (APRIL, f"green/{CSV}.gz", lambda: _csv_line(900, "store_and_fwd_flag", b'"N\r\nY"'),
                          f"{CSV}: the warehouse read 35,612 rows but the file has 35,613 lines of data: line 900 "
                          "holds a quoted field"),
    "invalid utf-8": (APRIL, f"green/{CSV}.gz", lambda: _csv_line(777, "store_and_fwd_flag", b"N\xff"),
                      f"{CSV}, line 777: the bytes are not valid UTF-8 in column store_and_fwd_flag"),
    "damaged parquet page": (JANUARY, f"tlc/{PARQUET}", _damaged_page,
                             f"{PARQUET}: a data page cannot be read (\"don't know what type"),
}


@pytest.mark.parametrize("case", list(STAGING_REFUSALS))
def test_a_file_refused_while_staging_says_what_is_wrong_first_and_is_kept_aside(case, tmp_path):
    partition, served_key, body, expected = STAGING_REFUSALS[case]
    root, home = _served(tmp_path), tmp_path / "home"
    file_name = served_key.split("/")[-1]
    month_key = f"green/{file_name}"
    with serve_folder(root) as server:
        resources = make_resources(home, server.url, f"{server.url}/tlc")
        assert load_month(GREEN, partition, resources).success
        loaded = _month_rows(home, file_name.removesuffix(".gz"))
        (root / served_key).write_bytes(body())
        result = load_month(GREEN, partition, resources, raise_on_error=False)
    step, message = failure(result)
    assert step == "green_staging" and expected in message.splitlines()[0], message
    assert _month_rows(home, file_name.removesuffix(".gz")) == loaded
    store = LocalObjectStore(home / "bucket")
    assert store.stat(f"green/rejected/{file_name}") is not None and store.stat(month_key) is not None
