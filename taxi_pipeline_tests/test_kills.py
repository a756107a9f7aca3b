"""Runs SIGKILLed in each step keep the bucket's promise: the month's object is the file the
warehouse's month came from, or, if the kill fell between the warehouse's commit and the move
of the file into place, the next run of the month puts it there before doing anything else.

Touches a real DuckDB file and bucket folder (copied from one with real green 2020-04 loaded), a
loopback HTTP source serving a corrected file (300 rows fewer), and a child process that runs
the job in process and is SIGKILLed at a chosen instant; the next run is served a bad file, so
it also shows that a refused file never displaces the one the warehouse holds.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.stores.local import LocalObjectStore
from taxi_pipeline_tests.helpers.bad_inputs import CASES, STAGING, failure, md5
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, load_month, make_resources, query, table_checksum

pytestmark = pytest.mark.faults

APRIL = "2020-04-01"
KEY = "green/green_tripdata_2020-04.csv.gz"
GOOD = (MIRROR / KEY).read_bytes()
_HEADER, *_ROWS = gzip.decompress(GOOD).split(b"\r\n")
CORRECTED = gzip.compress(b"\r\n".join([_HEADER, *_ROWS[300:]]))

# The child pauses (prints, then sleeps) at one instant of one step; the parent kills it there.
_CHILD = """
import contextlib, sys, time
from pathlib import Path
from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline_tests.helpers.support import load_month, make_resources
home, url, where = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

def pause():
    print("paused", flush=True)
    time.sleep(120)

if where == "raw":  # the download is complete and valid, not yet renamed into its pending key
    from taxi_pipeline.lib.stores import local
    replace = local.LocalObjectStore._replace
    def pausing(self, part, final, metadata):
        pause()
        return replace(self, part, final, metadata)
    local.LocalObjectStore._replace = pausing
elif where in ("staging", "merge"):  # inside the warehouse's transaction, before its COMMIT
    from taxi_pipeline.lib.warehouses.duckdb.warehouse import DuckDBWarehouse
    class Pausing:
        def __init__(self, con):
            self.con = con
        def execute(self, query, *args):
            if query == "COMMIT" and DuckDBWarehouse.step == where:
                pause()
            return self.con.execute(query, *args)
        def __getattr__(self, name):
            return getattr(self.con, name)
    connect = DuckDBWarehouse.connect
    @contextlib.contextmanager
    def pausing_connect(self, read_only=False):
        with connect(self, read_only) as con:
            yield Pausing(con)
    DuckDBWarehouse.connect = pausing_connect
    stage, merge = DuckDBWarehouse.stage, DuckDBWarehouse.merge
    def staging(self, *args):
        DuckDBWarehouse.step = "staging"
        return stage(self, *args)
    def merging(self, *args):
        DuckDBWarehouse.step = "merge"
        return merge(self, *args)
    DuckDBWarehouse.stage, DuckDBWarehouse.merge, DuckDBWarehouse.step = staging, merging, None
elif where == "staged":  # the warehouse has staged the file; the bucket does not say so yet
    from taxi_pipeline.lib.stores import publication
    mark = publication.MonthObjects.mark
    def pausing(self, stored, state):
        if state == publication.STAGED:
            pause()
        return mark(self, stored, state)
    publication.MonthObjects.mark = pausing
elif where == "promote":  # the warehouse has published the month; the file is not in place yet
    from taxi_pipeline.lib.stores import publication
    promote = publication.MonthObjects.promote
    def pausing(self, stored, run_id):
        pause()
        return promote(self, stored, run_id)
    publication.MonthObjects.promote = pausing
load_month(GREEN, "2020-04-01", make_resources(home, url))
"""


def _kill_at(home: Path, url: str, where: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home), url, where],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).parents[1])
    seen = []
    try:
        for line in child.stdout:  # Dagster's log lines, then ours
            seen.append(line)
            if line.strip() == "paused":
                break
        assert seen and seen[-1].strip() == "paused", "".join(seen[-40:])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("loaded") / "home"
    with serve_folder(MIRROR) as server:
        assert load_month(GREEN, APRIL, make_resources(home, server.url)).success
    return home


def _month_rows(home: Path) -> int:
    [(rows,)] = query(home, "SELECT count(*) FROM zoomcamp.green_tripdata WHERE filename = 'green_tripdata_2020-04.csv'")
    return rows


def _month_object(home: Path) -> bytes:
    return Path(LocalObjectStore(home / "bucket").stat(KEY).uri).read_bytes()


# where: (rows the warehouse holds right after the kill, rows after the next run)
KILLS = {
    "raw": (35_612, 35_612),
    "staging": (35_612, 35_612),
    "staged": (35_612, 35_612),
    "merge": (35_612, 35_612 - 300),  # its file was `merging`: the next run publishes it first
    "promote": (35_612 - 300, 35_612 - 300),
}


@pytest.mark.parametrize("where", list(KILLS))
def test_a_run_killed_in_any_step_leaves_the_bucket_holding_the_warehouses_file(loaded_home, tmp_path, where):
    home = Path(shutil.copytree(loaded_home, tmp_path / "home"))
    source = tmp_path / "source" / "green"
    source.mkdir(parents=True)
    (source / "green_tripdata_2020-04.csv.gz").write_bytes(CORRECTED)
    rows_after_kill, rows_after_next = KILLS[where]
    with serve_folder(tmp_path / "source") as server:
        _kill_at(home, server.url, where)
        assert _month_rows(home) == rows_after_kill
        if rows_after_kill == 35_612:  # nothing published: the table and the bucket as they were
            assert _month_object(home) == GOOD
        else:  # published, killed before the move: the file waits, marked, for the next run
            [left] = LocalObjectStore(home / "bucket").list("green/pending/")
            assert left.metadata["publication"] == "merging" and Path(left.uri).read_bytes() == CORRECTED

        # The next run is served a bad file: it finishes what the killed run left, then refuses its own.
        bad = CASES["csv-non_numeric"]
        (source / "green_tripdata_2020-04.csv.gz").write_bytes(bad.body())
        result = load_month(GREEN, APRIL, make_resources(home, server.url), raise_on_error=False)
    assert failure(result)[0] == STAGING
    assert _month_rows(home) == rows_after_next
    assert md5(_month_object(home)) == md5(GOOD if rows_after_next == 35_612 else CORRECTED)
    store = LocalObjectStore(home / "bucket")
    assert Path(store.stat("green/rejected/green_tripdata_2020-04.csv.gz").uri).read_bytes() == bad.body()
    assert all(o.metadata.get("publication") != "merging" for o in store.list("green/pending/"))
    before = table_checksum(home, GREEN)
    assert load_month(GREEN, APRIL, make_resources(home, MIRROR.as_uri())).success  # and the good file loads
    assert _month_object(home) == GOOD and table_checksum(home, GREEN)[0] == 35_612
    assert before[0] == rows_after_next
