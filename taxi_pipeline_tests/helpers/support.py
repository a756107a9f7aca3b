"""Helpers shared by the tests: load a month through the real assets, read files and tables."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb

from taxi_pipeline.defs.assets import build_colour_assets
from taxi_pipeline.defs.checks import build_main_table_check, build_schema_drift_check
from taxi_pipeline.defs.resources import SourceResource
from taxi_pipeline.defs.target import LocalTargetResource
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.rowid import row_ids

DATA = Path(__file__).parents[1] / "data"
MIRROR = DATA / "mirror"  # the release's layout: <colour>/<file>.csv.gz
TLC = DATA / "tlc"  # the TLC's layout: <file>.parquet, flat


def make_resources(home: Path, base_url: str, tlc_url: str | None = None, **source: object) -> dict[str, object]:
    """The embedded target in `home`, with fast retries so fault tests stay quick."""
    settings = {"attempts": 3, "first_retry_delay_s": 0.01, "timeout_s": 5.0, **source}
    return {
        "source": SourceResource(base_url=base_url, tlc_url=tlc_url or TLC.as_uri(), **settings),
        "target": LocalTargetResource(home=str(home), dataset="zoomcamp"),
    }


def forget_closed_dagster_instances() -> None:
    """Dagster 1.13.27 can leave an instance that has been closed as the current defs-state storage
    (seen after `build_schedule_context(instance=...)` of a test instance, and now and then between
    two in-process materializations, depending on when the garbage collector runs); the next
    `dg.materialize` in the process then fails with "Attempted to resolve undefined DagsterInstance
    weakref". Clearing the context variable first keeps in-process loads independent of what ran
    before them."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)


def load_month(colour: Colour, partition_key: str, resources: dict, **kwargs) -> dg.ExecuteInProcessResult:
    """Materializes the colour's three assets and its check for one month, in process."""
    assets = [
        *build_colour_assets(colour, resources["target"].target_class), build_main_table_check(colour), build_schema_drift_check(colour),
    ]
    for attempt in (1, 2):
        forget_closed_dagster_instances()
        try:
            return dg.materialize(assets, partition_key=partition_key, resources=resources, **kwargs)
        except dg.DagsterInvariantViolationError as exc:
            # The same Dagster 1.13.27 flaw as above, met while `materialize` resolves its job
            # (before any step runs, so trying again loads nothing twice): seen once in a full run.
            if attempt == 2 or "undefined DagsterInstance weakref" not in str(exc):
                raise
    raise AssertionError("unreachable")


def read_csv_gz(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, as text, the way the warehouse reads it (blank lines skipped)."""
    with gzip.open(path, "rt", newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if row]
    return rows[0], rows[1:]


def write_csv_gz(path: Path, header: list[str], rows: list[list[str]], newline: str = "\r\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    csv.writer(text, lineterminator=newline).writerows([header, *rows])
    path.write_bytes(gzip.compress(text.getvalue().encode()))
    return path


def reference_ids(file_name: str, path: Path) -> list[str]:
    """The ids the pipeline must give the file's rows, computed in plain Python."""
    return list(row_ids(file_name, read_csv_gz(path)[1]))


def copy_mirror(dest: Path) -> Path:
    shutil.copytree(MIRROR, dest, dirs_exist_ok=True)
    return dest


def query(home: Path, sql: str, params: object = None) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def month_ids(home: Path, colour: Colour, file_name: str) -> list[str]:
    return [r[0] for r in query(
        home, f"SELECT printf('%032x', unique_row_id) FROM zoomcamp.{colour.main_table} WHERE filename = ?", [file_name]
    )]


def table_checksum(home: Path, colour: Colour) -> tuple[int, str | None]:
    """Row count and an order-independent hash of every unique_row_id in the main table."""
    [(count, digest)] = query(
        home,
        f"SELECT count(*), sum(hash(unique_row_id))::VARCHAR FROM zoomcamp.{colour.main_table}",
    )
    return count, digest


_HOLDER = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"


@contextlib.contextmanager
def warehouse_held(home: Path, path: Path | None = None) -> Iterator[None]:
    """Another process holds the embedded warehouse's file (as a DuckDB CLI left open would)
    until the block ends: every run or tick that needs it meanwhile finds it locked."""
    home.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path or home / "warehouse.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()  # its read ends: it exits and lets go
        holder.wait(30)


def wait_until_each_logged(procs: list[tuple[subprocess.Popen, Path]], text: str) -> None:
    """Returns once every process's log holds `text`; fails if one ends without it."""
    while True:
        missing = [(proc, log) for proc, log in procs if text not in log.read_text()]
        if not missing:
            return
        for proc, log in missing:
            assert proc.poll() is None, f"ended without logging {text!r}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
