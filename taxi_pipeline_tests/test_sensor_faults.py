"""The publication sensor and the schedule when the source cannot be reached, and when a file was
refused: real ticks (`evaluate_tick`) against the fault-injecting loopback server, a real DuckDB
file and bucket folder. A reset, a stall or a 5xx on the HEAD requests is retried with the
downloads' backoff; a tick that still cannot reach the source skips with that reason (no error)
and the sensor looks again after `RETRY_S`, not a day later.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import struct
import time

import dagster as dg
import pytest

from taxi_pipeline.defs.assets import build_colour_assets
from taxi_pipeline.defs.checks import build_main_table_check, build_schema_drift_check
from taxi_pipeline.defs.jobs import build_colour_job
from taxi_pipeline.defs.schedules import build_colour_schedule
from taxi_pipeline.defs.sensors import DAILY, RETRY_S, build_colour_sensor
from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.targets.local import LocalTarget
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, TLC, make_resources

pytestmark = pytest.mark.faults


def _recent(months_back: int) -> dt.date:
    month = dt.datetime.now(dt.UTC).date().replace(day=1)
    for _ in range(months_back):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


def _reset(handler, path) -> bool:
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    handler.connection.close()  # SO_LINGER 0: the client sees a TCP reset
    return True


def _stall(handler, path) -> bool:
    time.sleep(1.5)  # longer than the probe's timeout below
    handler.close_connection = True
    return True


def _status(code: int):
    def answer(handler, path) -> bool:
        handler.send_error(code)
        return True
    return answer


@pytest.fixture
def sensor_setup(tmp_path):
    """A TLC mirror holding one recent month, served over loopback, and a sensor over it."""
    month = _recent(4)
    name = f"green_tripdata_{month:%Y-%m}.parquet"
    root = tmp_path / "tlc"
    root.mkdir()
    shutil.copy(TLC / "green_tripdata_2025-01.parquet", root / name)
    with serve_folder(root) as server:
        resources = make_resources(tmp_path / "home", MIRROR.as_uri(), server.url, timeout_s=0.5)
        job = build_colour_job(GREEN)
        sensor = build_colour_sensor(GREEN, job, lookback_months=6)
        definitions = dg.Definitions(
            assets=build_colour_assets(GREEN, LocalTarget), jobs=[job], sensors=[sensor], resources=resources,
            asset_checks=[build_main_table_check(GREEN), build_schema_drift_check(GREEN)],
        )
        with dg.instance_for_test() as instance:
            def tick(cursor=None):
                context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor,
                                                  repository_def=definitions.get_repository_def())
                return sensor.evaluate_tick(context)
            yield server, sensor, tick, month, name, definitions, instance, root


@pytest.mark.parametrize("fault", [_reset, _stall, _status(503)], ids=["reset", "stall", "503"])
def test_a_probe_fault_is_retried_and_the_month_is_found(sensor_setup, fault):
    server, _, tick, month, name, *_ = sensor_setup
    server.faults.extend([fault, fault])  # the first two HEADs fail (the newest month's, 404 after them)
    data = tick()
    [request] = data.run_requests
    assert request.tags["reason"] == "new" and request.tags["file"] == name
    assert len(server.heads) == 6 + 2  # one HEAD a month, and the two that failed
    assert json.loads(data.cursor)["next_look_at"] - json.loads(data.cursor)["looked_at"] == DAILY


@pytest.mark.parametrize("fault", [_reset, _stall, _status(503)], ids=["reset", "stall", "503"])
def test_a_source_that_stays_unreachable_skips_with_the_reason_and_is_tried_again_soon(sensor_setup, fault):
    server, sensor, tick, *_ = sensor_setup
    server.faults.extend([fault] * 3)  # every attempt of the first probe (make_resources: 3 attempts)
    data = tick()
    assert not data.run_requests
    assert data.skip_message.startswith("cannot reach the source: ")
    assert "after 3 attempt(s)" in data.skip_message
    assert len(server.heads) == 3, server.heads  # it stops at the first month: the others are at the same source
    cursor = json.loads(data.cursor)
    assert cursor["next_look_at"] - cursor["looked_at"] == RETRY_S <= 60 * 60
    assert sensor.minimum_interval_seconds <= RETRY_S
    # A tick before the look is due sends nothing; one after it looks again and finds the month.
    early = tick(data.cursor)
    assert not early.run_requests and "next look at" in early.skip_message and len(server.heads) == 3
    due = json.dumps({**cursor, "next_look_at": cursor["looked_at"]})
    [request] = tick(due).run_requests
    assert request.tags["reason"] == "new"


def test_the_schedule_skips_with_the_reason_when_the_source_is_unreachable(tmp_path):
    root = tmp_path / "release"
    (root / "green").mkdir(parents=True)
    with serve_folder(root) as server:
        server.faults.extend([_status(503)] * 3)
        resources = make_resources(tmp_path / "home", server.url)
        job = build_colour_job(GREEN)
        schedule = build_colour_schedule(GREEN, job)
        definitions = dg.Definitions(assets=build_colour_assets(GREEN, LocalTarget), jobs=[job],
                                     schedules=[schedule], resources=resources)
        with dg.instance_for_test() as instance:
            context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=dt.datetime(2020, 5, 1, 9, tzinfo=dt.UTC),
                resources=resources, repository_def=definitions.get_repository_def())
            data = schedule.evaluate_tick(context)
    assert not data.run_requests
    assert data.skip_message.startswith("cannot reach the source: green_tripdata_2020-04.csv.gz")


def test_a_rejected_file_is_not_launched_again_until_the_source_changes_it(sensor_setup):
    """The warehouse refused the month's file: the sensor says so and waits for a new one."""
    server, sensor, tick, month, name, definitions, instance, root = sensor_setup
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(root / name)
    codes = table.column("RatecodeID").cast(pa.float64()).to_pylist()
    codes[7] = 1.5  # a code no integer holds: refused while staging
    pq.write_table(table.set_column(table.column_names.index("RatecodeID"), "RatecodeID", pa.array(codes, pa.float64())),
                   root / name)
    [request] = tick().run_requests
    result = definitions.resolve_job_def("green_taxi_job").execute_in_process(
        partition_key=request.partition_key, instance=instance, tags=request.tags, raise_on_error=False)
    assert not result.success
    waiting = tick()
    assert not waiting.run_requests
    assert f"{month:%Y-%m}: the source's file was rejected" in waiting.skip_message and "1.5" in waiting.skip_message
    shutil.copy(TLC / "green_tripdata_2025-01.parquet", root / name)  # the source replaces it
    [again] = tick().run_requests
    assert again.tags["reason"] == "new"
