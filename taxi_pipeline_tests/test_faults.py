"""Fault injection: bad files, broken networks, killed and concurrent runs, hostile configuration.

Touches a real DuckDB file per test (copied from one loaded with real green 2020-04), a loopback
HTTP server with injected faults, and child processes that are killed or limited. Every failing
case must end with a message naming the file and leave the main table's checksum (count +
order-independent hash of the ids) and the bucket object as they were (bad files: `test_bad_input.py`).
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taxi_pipeline.lib.colours import GREEN, Colour
from taxi_pipeline.lib.identifiers import validate_bucket_name, validate_object_key
from taxi_pipeline.lib.stores.local import LocalObjectStore
from taxi_pipeline.lib.targets.local import LocalTarget
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import (
    MIRROR,
    load_month,
    make_resources,
    table_checksum,
    wait_until_each_logged,
    warehouse_held,
)

pytestmark = pytest.mark.faults

APRIL = "2020-04-01"
FILE = "green_tripdata_2020-04.csv"
REAL = MIRROR / "green" / f"{FILE}.gz"
TEXT = gzip.decompress(REAL.read_bytes())


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory) -> Path:
    """A TAXI_HOME with real green 2020-04 loaded once; each test works on a copy."""
    home = tmp_path_factory.mktemp("loaded") / "home"
    with serve_folder(MIRROR) as server:
        assert load_month(GREEN, APRIL, make_resources(home, server.url)).success
    return home


@pytest.fixture
def home(loaded_home, tmp_path) -> Path:
    return Path(shutil.copytree(loaded_home, tmp_path / "home"))


@pytest.fixture
def served(tmp_path):
    """A loopback server over a mirror holding what the test writes as green 2020-04."""
    root = tmp_path / "mirror"
    (root / "green").mkdir(parents=True)
    with serve_folder(root) as server:
        server.month_file = root / "green" / f"{FILE}.gz"
        yield server


def _failed_step(result) -> tuple[str, str]:
    """The step that failed and the error message that names the file."""
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    while error.cause is not None and FILE not in error.message:
        error = error.cause
    return failure.step_key, error.message


def _failure(result) -> str:
    return _failed_step(result)[1]


def _assert_fails_and_nothing_changes(home: Path, server, *expected: str, **source) -> str:
    before = table_checksum(home, GREEN)
    bucket_before = (home / "bucket" / "green" / f"{FILE}.gz").read_bytes()
    result = load_month(GREEN, APRIL, make_resources(home, server.url, **source), raise_on_error=False)
    assert not result.success
    step, message = _failed_step(result)
    for text in (FILE, *expected):
        assert text in message, message
    assert step == "green_raw_file", message  # network faults and missing files stop the download
    assert table_checksum(home, GREEN) == before
    assert (home / "bucket" / "green" / f"{FILE}.gz").read_bytes() == bucket_before
    assert not (home / "bucket" / "green" / "pending").exists() and not (home / "bucket" / "green" / "rejected").exists()
    assert not list((home / "bucket").rglob("*.part")), "temporary files left behind"
    return message


# The bad files themselves (CSV and Parquet, every check and the failed step) are in
# `test_bad_input.py`; this module covers the network, process and configuration faults.


def test_a_month_the_source_lacks_is_a_clear_404(home, served):
    _assert_fails_and_nothing_changes(home, served, "not published at the source (HTTP 404)")


@pytest.mark.parametrize(
    "variant",
    [
        ("bom", b"\xef\xbb\xbf" + TEXT),
        ("trailing blank lines", TEXT + b"\r\n\r\n"),
        ("LF endings", TEXT.replace(b"\r\n", b"\n")),
    ],
    ids=lambda v: v[0],
)
def test_harmless_variants_load_every_row(home, served, variant):
    served.month_file.write_bytes(gzip.compress(variant[1]))
    before = table_checksum(home, GREEN)
    assert load_month(GREEN, APRIL, make_resources(home, served.url)).success
    assert table_checksum(home, GREEN) == before  # same rows, same ids: nothing added or lost


# --- network faults -----------------------------------------------------------------------------

def _reset_mid_stream(handler, path: Path) -> bool:
    body = path.read_bytes()
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    handler.connection.close()  # SO_LINGER 0: the client sees a TCP reset
    return True


def _stall(handler, path: Path) -> bool:
    handler.send_response(200)
    handler.send_header("Content-Length", str(path.stat().st_size))
    handler.end_headers()
    handler.wfile.write(path.read_bytes()[:1000])
    handler.wfile.flush()
    time.sleep(1.5)
    return True


def _status(code: int):
    def answer(handler, path: Path) -> bool:
        handler.send_error(code)
        return True
    return answer


@pytest.mark.parametrize(
    "faults",
    [[_reset_mid_stream], [_status(503)], [_status(503), _reset_mid_stream], [_stall]],
    ids=["reset mid-stream", "503 then 200", "503, reset, then 200", "stall once"],
)
def test_transient_network_faults_are_retried_and_the_month_loads(tmp_path, served, faults):
    served.month_file.write_bytes(REAL.read_bytes())
    served.faults.extend(faults)
    home = tmp_path / "fresh"
    result = load_month(GREEN, APRIL, make_resources(home, served.url, timeout_s=0.5))
    assert result.success and len(served.requests) == len(faults) + 1
    [raw] = [e for e in result.get_asset_materialization_events() if e.step_key == "green_raw_file"]
    assert raw.materialization.metadata["download_attempts"].value == len(faults) + 1
    assert table_checksum(home, GREEN)[0] == 35_612


def test_a_server_that_keeps_stalling_fails_clearly_after_the_retries(home, served):
    served.month_file.write_bytes(REAL.read_bytes())
    served.faults.extend([_stall] * 3)
    message = _assert_fails_and_nothing_changes(
        home, served, "giving up after 3 attempts", "stalled", timeout_s=0.3,
    )
    assert len(served.requests) == 3, message


def _stall_after_a_chunk(handler, path: Path) -> bool:
    """The first MiB (one download chunk) and a little more, then nothing."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(path.stat().st_size))
    handler.end_headers()
    handler.wfile.write(path.read_bytes()[: 2**20 + 1000])
    handler.wfile.flush()
    time.sleep(1.5)
    return True


def test_an_error_page_whose_connection_then_stalls_is_a_bad_file_not_a_network_fault(home, served):
    """The validator checks a chunk while the next one is read: its verdict on the bytes it has
    wins over the stall that follows, so the page is named and not downloaded again."""
    served.month_file.write_bytes(b"<!DOCTYPE html><html><body>" + b"<p>Service unavailable</p>" * 150_000)
    served.faults.extend([_stall_after_a_chunk] * 3)
    message = _assert_fails_and_nothing_changes(home, served, "got an HTML page", timeout_s=0.3)
    assert len(served.requests) == 1, message


# --- process faults -----------------------------------------------------------------------------

_MERGE_KILLED_AT_COMMIT = """
import contextlib, datetime as dt, sys, time
from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.warehouses.duckdb.warehouse import DuckDBWarehouse

class PausingAtCommit:
    def __init__(self, con):
        self.con = con
    def execute(self, query, *args):
        if query == "COMMIT":
            print("merged, about to commit", flush=True)   # the month's DELETE/INSERT ran, uncommitted
            time.sleep(120)
        return self.con.execute(query, *args)

connect = DuckDBWarehouse.connect
@contextlib.contextmanager
def pausing_connect(self, read_only=False):
    with connect(self, read_only) as con:
        yield PausingAtCommit(con)
DuckDBWarehouse.connect = pausing_connect
month = dt.date.fromisoformat(sys.argv[2])
from taxi_pipeline.lib.raw_file import RawFile
# No MD5: the staged table is merged as it is (a run's merge would first check it holds its file).
DuckDBWarehouse(sys.argv[1], "zoomcamp").merge(GREEN, month, RawFile("", f"green_tripdata_{month:%Y-%m}.csv", "csv"))
"""


def _kill_merge_at_commit(database: Path, month: str) -> None:
    """Merges `month` in a child process and SIGKILLs it inside the merge's transaction."""
    child = subprocess.Popen(
        [sys.executable, "-c", _MERGE_KILLED_AT_COMMIT, str(database), month],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "merged, about to commit"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)


def test_a_run_killed_inside_the_merge_leaves_the_old_month_and_a_rerun_completes(home, served):
    """Stage a corrected file (300 rows fewer), kill the merge inside its transaction, then re-run."""
    header, *rows = TEXT.split(b"\r\n")
    served.month_file.write_bytes(gzip.compress(b"\r\n".join([header, *rows[300:]])))
    staged = load_month(
        GREEN, APRIL, make_resources(home, served.url), selection=["green_raw_file", "green_staging"]
    )
    assert staged.success
    before = table_checksum(home, GREEN)

    _kill_merge_at_commit(home / "warehouse.duckdb", APRIL)
    assert table_checksum(home, GREEN) == before  # the old month, whole

    assert load_month(GREEN, APRIL, make_resources(home, served.url)).success
    assert table_checksum(home, GREEN)[0] == 35_612 - 300


def test_a_run_killed_before_committing_a_first_load_leaves_the_table_without_the_month(home):
    """A month's first load skips the anti-joins; a kill after its INSERT must still roll it back."""
    with serve_folder(MIRROR) as server:
        resources = make_resources(home, server.url)
        staged = load_month(GREEN, "2020-10-01", resources, selection=["green_raw_file", "green_staging"])
        assert staged.success
        before = table_checksum(home, GREEN)
        _kill_merge_at_commit(home / "warehouse.duckdb", "2020-10-01")
        assert table_checksum(home, GREEN) == before  # April only, as before

        assert load_month(GREEN, "2020-10-01", resources).success
    assert table_checksum(home, GREEN)[0] == 35_612 + 95_120


def test_two_runs_of_the_same_month_at_once_load_it_once(tmp_path, http_mirror):
    """Two processes, same month, same DuckDB file: both wait for the lock (held by the test until
    both say so, so they provably overlap), then load the month once between them."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "TAXI_HOME": str(tmp_path / "home"),
           "TAXI_SOURCE_URL": http_mirror.url}
    (tmp_path / "dagster").mkdir()
    cli = str(Path(sys.executable).with_name("dagster"))
    subprocess.run([cli, "instance", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    command = [cli, "job", "execute", "-m", "taxi_pipeline.definitions", "-j", "green_taxi_job",
               "--tags", '{"dagster/partition": "2020-04-01"}']
    procs = []
    with warehouse_held(tmp_path / "home"):
        for i in range(2):
            log = tmp_path / f"run{i}.log"
            with open(log, "w") as out:
                procs.append((subprocess.Popen(command, env=env, cwd=Path(__file__).parents[1], stdout=out,
                                               stderr=subprocess.STDOUT, text=True), log))
        wait_until_each_logged(procs, "is locked by")
    assert [proc.wait(300) for proc, _ in procs] == [0, 0], "\n".join(log.read_text()[-2000:] for _, log in procs)
    count, _ = table_checksum(tmp_path / "home", GREEN)
    assert count == 35_612
    store = LocalObjectStore(tmp_path / "home" / "bucket")
    assert store.stat(f"green/{FILE}.gz").metadata["rows"] == "35612" and not store.list("green/pending/")


_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # write() then fails with EFBIG, like ENOSPC
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.sources.csvgz import CsvGzipValidator
from taxi_pipeline.lib.sources.http import download
from taxi_pipeline.lib.sources.release import ReleaseSource
from taxi_pipeline.lib.stores.local import LocalObjectStore
store = LocalObjectStore(sys.argv[1])
source = ReleaseSource()
file = source.locate(GREEN, __import__("datetime").date(2020, 4, 1))
try:
    with store.write(file.object_key) as pending:
        download(sys.argv[2], pending.path, lambda: source.validator(GREEN, file))
except OSError as exc:
    print(exc)
"""


def test_a_full_disk_in_the_bucket_is_a_clear_error_and_leaves_no_temp_file(home, served):
    served.month_file.write_bytes(REAL.read_bytes())
    bucket = home / "bucket"
    old = (bucket / "green" / f"{FILE}.gz").read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMIT, str(bucket), f"{served.url}/green/{FILE}.gz"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert "cannot write bucket object" in done.stdout and f"{FILE}.gz" in done.stdout, done.stdout + done.stderr
    assert "File too large" in done.stdout
    assert (bucket / "green" / f"{FILE}.gz").read_bytes() == old
    assert not list(bucket.rglob("*.part"))


def test_a_bucket_path_that_cannot_be_a_folder_is_a_clear_error(home, served):
    """Root ignores permission bits, so an obstructed path stands in for an unwritable folder."""
    served.month_file.write_bytes(REAL.read_bytes())
    shutil.rmtree(home / "bucket")
    (home / "bucket").write_text("not a folder")
    before = table_checksum(home, GREEN)
    result = load_month(GREEN, APRIL, make_resources(home, served.url), raise_on_error=False)
    assert not result.success
    assert "cannot write bucket object" in _failure(result) and FILE in _failure(result)
    assert table_checksum(home, GREEN) == before


# --- hostile configuration ----------------------------------------------------------------------

HOSTILE = ['zoom"camp', "zoom`camp", "zoomcamp; DROP TABLE x", "../zoomcamp", "zoom'camp", "a b", ""]


@pytest.mark.parametrize("dataset", HOSTILE)
def test_a_hostile_dataset_is_rejected_before_any_sql(tmp_path, dataset):
    with pytest.raises(ValueError, match="invalid dataset"):
        LocalTarget(tmp_path, dataset).warehouse()
    assert not (tmp_path / "warehouse.duckdb").exists()


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_colour_is_rejected(name):
    with pytest.raises(ValueError, match="invalid colour"):
        Colour(name=name, columns=GREEN.columns, schedule_hour_utc=9)


@pytest.mark.parametrize("key", ["../green/x.csv.gz", "/etc/passwd", "green/../../x", "green/x;rm.csv", "green//x"])
def test_a_hostile_object_key_is_rejected_before_any_path_is_built(key):
    with pytest.raises(ValueError, match="invalid object key"):
        validate_object_key(key)


@pytest.mark.parametrize("bucket", ["my..bucket", "Bucket", "b", "bucket/../x", "bucket;x", "`b`"])
def test_a_hostile_bucket_name_is_rejected(bucket):
    with pytest.raises(ValueError, match="invalid bucket name"):
        validate_bucket_name(bucket)


@pytest.mark.parametrize(("bucket", "rule"), [
    ("goog-taxi", "may not start with 'goog'"),
    ("my-google-taxi", "may not contain 'google'"),
    ("taxi-g00gle", "close misspelling"),
    ("taxi-go0gle-x", "close misspelling"),
    ("192.168.1.7", "IP address"),
    ("a" * 64, "without dots has at most 63"),
    ("ok." + "b" * 64, "each has at most 63"),
    (".".join(["abcdefgh" * 7] * 4), "at most 222"),
    ("taxi.", "start"),
    ("x", "at least 3"),
])
def test_a_bucket_name_gcs_would_refuse_is_rejected_with_the_rule_it_breaks(bucket, rule):
    """https://cloud.google.com/storage/docs/buckets#naming"""
    with pytest.raises(ValueError, match="invalid bucket name") as raised:
        validate_bucket_name(bucket)
    assert rule in str(raised.value)


@pytest.mark.parametrize("bucket", ["taxi-bucket", "taxi_bucket.example.com", "a.b.c", "a" * 63, ".".join(["b" * 63] * 3)])
def test_a_bucket_name_gcs_accepts_is_accepted(bucket):
    assert validate_bucket_name(bucket) == bucket


def test_a_hostile_source_url_scheme_is_rejected(tmp_path):
    resources = make_resources(tmp_path, "ftp://example.invalid/x")
    with pytest.raises(ValueError, match="TAXI_SOURCE_URL must be an http"):
        resources["source"].choice()
    resources = make_resources(tmp_path, "file:///mirror", tlc_url="gopher://example.invalid/x")
    with pytest.raises(ValueError, match="TAXI_TLC_URL must be an http"):
        resources["source"].choice()
