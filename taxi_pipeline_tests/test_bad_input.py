"""Every bad input on the embedded target (a real DuckDB file and bucket folder, copied from one
loaded with real green 2020-04, 2020-10 and 2025-01, and a loopback HTTP source): the step that
must refuse it fails with a message naming the file (and, on DuckDB, the line); the main table's
checksum is as it was; the month's object in the bucket is still the good file, byte for byte; a
file refused while staging is kept under `rejected/` with the error; and the raw asset's last
materialization describes the file that is loaded, not the refused one.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.stores.local import LocalObjectStore
from taxi_pipeline_tests.helpers.bad_inputs import (
    CASES,
    RAW,
    STAGING,
    Case,
    failure,
    forbidden,
    md5,
    raw_materializations,
)
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, TLC, load_month, make_resources, query, table_checksum

pytestmark = pytest.mark.faults


def good_bytes(case: Case) -> bytes:
    return (MIRROR / "green" / case.object_name if case.format == "csv" else TLC / case.object_name).read_bytes()


def serve(case: Case, root: Path) -> Path:
    """Lays `case`'s file out as its source does (release: <colour>/<file>.gz; TLC: flat)."""
    path = root / "green" / case.object_name if case.format == "csv" else root / case.object_name
    path.parent.mkdir(parents=True, exist_ok=True)
    body = case.body()
    if body is not None:
        path.write_bytes(body)
    return path


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("loaded") / "home"
    with serve_folder(MIRROR) as server:
        for month in ("2020-04-01", "2020-10-01", "2025-01-01"):
            assert load_month(GREEN, month, make_resources(home, server.url, TLC.as_uri())).success
    return home


def assert_refused_and_nothing_lost(home: Path, case: Case, result, served: bytes | None, before) -> None:
    assert not result.success
    step, message = failure(result)
    assert step == case.step, message
    for text in (case.file_name, *case.expected, *case.duckdb_expected):
        assert text in message, message
    assert table_checksum(home, GREEN) == before
    store = LocalObjectStore(home / "bucket")
    month_object = store.stat(f"green/{case.object_name}")
    assert md5(Path(month_object.uri).read_bytes()) == md5(good_bytes(case)) == month_object.metadata["md5"]
    assert not store.list("green/pending/"), "a pending file was left behind"
    assert not list((home / "bucket").rglob("*.part")), "temporary files left behind"
    rejected = store.stat(f"green/rejected/{case.object_name}")
    if case.step == STAGING:  # refused after the download: kept aside, with the reason
        assert md5(Path(rejected.uri).read_bytes()) == md5(served)
        assert rejected.metadata["publication"] == "rejected"
        assert all(text in rejected.metadata["error"] for text in (*case.expected, *case.duckdb_expected))
        *_, last = raw_materializations(result)
        assert last["md5"] == md5(good_bytes(case)) and last["rejected_md5"] == md5(served)
        assert last["uri"] == month_object.uri
    else:  # refused while downloading: never written anywhere
        assert rejected is None
        assert raw_materializations(result) == []


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_file_fails_in_its_step_and_the_table_and_the_bucket_keep_the_good_month(loaded_home, tmp_path, name):
    case = CASES[name]
    home = Path(shutil.copytree(loaded_home, tmp_path / "home"))
    before = table_checksum(home, GREEN)
    path = serve(case, tmp_path / "source")
    with serve_folder(tmp_path / "source") as server:
        if case.forbidden:
            server.faults.append(forbidden)
        result = load_month(GREEN, case.partition, make_resources(home, server.url, server.url), raise_on_error=False)
    assert_refused_and_nothing_lost(home, case, result, path.read_bytes() if path.exists() else None, before)


def test_after_any_sequence_of_good_and_bad_runs_the_bucket_holds_the_loaded_file(loaded_home, tmp_path):
    """good (loaded) -> bad -> corrected -> bad -> the corrected file again: the month's object
    is always the file the main table's month came from, and a re-run stages the right one."""
    home = Path(shutil.copytree(loaded_home, tmp_path / "home"))
    case = CASES["csv-twelve_fare"]
    root = tmp_path / "source"
    store = LocalObjectStore(home / "bucket")
    text = gzip.decompress(good_bytes(case))
    header, *rows = text.split(b"\r\n")
    corrected = gzip.compress(b"\r\n".join([header, *rows[100:]]))
    with serve_folder(root) as server:
        resources = make_resources(home, server.url)
        for body, ok, rows_after in ((case.body(), False, 95_120), (corrected, True, 95_020),
                                     (case.body(), False, 95_020), (corrected, True, 95_020)):
            path = serve(case, root)
            path.write_bytes(body)
            before = table_checksum(home, GREEN)
            result = load_month(GREEN, case.partition, resources, raise_on_error=False)
            assert result.success is ok, failure(result)[1] if not ok else ""
            if not ok:
                assert failure(result)[0] == STAGING and table_checksum(home, GREEN) == before
            month_object = store.stat(f"green/{case.object_name}")
            loaded = corrected if rows_after == 95_020 else good_bytes(case)
            assert md5(Path(month_object.uri).read_bytes()) == md5(loaded)
            assert int(month_object.metadata["rows"]) == rows_after
            [(month_rows,)] = query(
                home, "SELECT count(*) FROM zoomcamp.green_tripdata WHERE filename = ?", [case.file_name])
            assert month_rows == rows_after
            assert raw_materializations(result)[-1]["md5"] == md5(loaded)


def test_a_raw_step_failure_writes_nothing_and_reports_no_materialization(loaded_home, tmp_path):
    """The raw step's own failure (a file refused while downloading) leaves no pending file."""
    case = CASES["csv-truncated_gzip"]
    assert case.step == RAW
    home = Path(shutil.copytree(loaded_home, tmp_path / "home"))
    serve(case, tmp_path / "source")
    with serve_folder(tmp_path / "source") as server:
        result = load_month(GREEN, case.partition, make_resources(home, server.url), raise_on_error=False)
    assert failure(result)[0] == RAW
    assert not (home / "bucket" / "green" / "pending").exists()
