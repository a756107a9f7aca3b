"""A mistyped month or setting is refused at once: one message naming the key or the variable, the
form and the valid values; the source is not asked (the loopback mirror counts every request) and
nothing is written (the bucket and the warehouse are not even created)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from taxi_pipeline.defs.partitions import NotAMonthError, check_month_key, last_month
from taxi_pipeline.lib.settings import SettingsError, read_settings

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)


def _this_month() -> str:
    return f"{(last_month() + dt.timedelta(days=40)).replace(day=1):%Y-%m-%d}"


@pytest.mark.parametrize("key", ["2020-04-15", "2020-04", "2018-12-01", "2026-12-01", "abc", "2020-13-01", ""])
def test_a_key_that_is_not_a_month_is_refused_with_the_form_and_the_range(key):
    with pytest.raises(NotAMonthError) as refused:
        check_month_key(key, NOW)
    assert refused.value.description == (
        f"partition key {key!r} is not a month: use YYYY-MM-01, the first day of a month from 2019-01-01 "
        "to 2026-11-01 (the month that just ended); nothing was downloaded or written")


def test_every_month_from_the_first_to_the_one_that_just_ended_is_a_month():
    assert check_month_key("2019-01-01", NOW) == dt.date(2019, 1, 1)
    assert check_month_key("2026-11-01", NOW) == dt.date(2026, 11, 1)
    assert last_month(dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)) == dt.date(2026, 12, 1)


SETTING_TYPOS = {
    "TAXI_TARGET=bigqeury": "TAXI_TARGET='bigqeury' is not valid (did you mean 'gcp'?): use one of local, gcp",
    "TAXI_TARGET=locl": "TAXI_TARGET='locl' is not valid (did you mean 'local'?): use one of local, gcp",
    "TAXI_SOURCE=relase": "TAXI_SOURCE='relase' is not valid (did you mean 'release'?): use one of auto, release, tlc",
    "TAXI_DATASET=temp": "TAXI_DATASET='temp' is not valid: 'temp' is a name the warehouse keeps for itself",
    "TAXI_DATASET=information_schema": "TAXI_DATASET='information_schema' is not valid: 'information_schema' is a name",
    "TAXI_DATASET=zoom-camp": "TAXI_DATASET='zoom-camp' is not valid: invalid dataset name 'zoom-camp': use letters",
    "TAXI_SOURCE_URL=github.com/x": "TAXI_SOURCE_URL='github.com/x' is not a source URL: use http://host/path",
    "TAXI_TLC_URL=ftp://tlc": "TAXI_TLC_URL='ftp://tlc' is not a source URL",
    "TAXI_SENSOR_INTERVAL_S=30s": "TAXI_SENSOR_INTERVAL_S='30s' is not valid: use a whole number above 0",
    "TAXI_SENSOR_LOOKBACK_MONTHS=0": "TAXI_SENSOR_LOOKBACK_MONTHS='0' is not valid: use a whole number above 0",
    "TAXI_SCHEDULE_CRON=every minute": "TAXI_SCHEDULE_CRON='every minute' is not a cron string: use five fields",
    "TAXI_TARGET=gcp GCP_BUCKET_NAME=my-bucket": "TAXI_TARGET=gcp needs GCP_PROJECT_ID: set it",
    "TAXI_TARGET=gcp GCP_PROJECT_ID=my-project": "TAXI_TARGET=gcp needs GCP_BUCKET_NAME: set it",
    "TAXI_TARGET=gcp GCP_PROJECT_ID=My Project GCP_BUCKET_NAME=my-bucket": "GCP_PROJECT_ID='My Project' is not a project ID",
    "TAXI_TARGET=gcp GCP_PROJECT_ID=my-project GCP_BUCKET_NAME=My_Bucket": "GCP_BUCKET_NAME='My_Bucket' is not valid: invalid bucket name",
    "TAXI_TARGET=gcp GCP_PROJECT_ID=my-project GCP_BUCKET_NAME=my-bucket GCP_LOCATION=u s": "GCP_LOCATION='u s' is not a location",
    "TAXI_DUCKDB_PATH=/data/taxi_rides_ny": "TAXI_DUCKDB_PATH='/data/taxi_rides_ny' is not a DuckDB file's path: use a path ending in .duckdb",
    "TAXI_DBT_PROJECT_DIR=/nowhere/taxi_rides_ny": "TAXI_DBT_PROJECT_DIR='/nowhere/taxi_rides_ny' holds no dbt_project.yml",
    "TAXI_DBT_EXECUTABLE=/nowhere/dbt": "TAXI_DBT_EXECUTABLE='/nowhere/dbt' is not an executable file",
}


def _env(assignments: str) -> dict[str, str]:
    env, name = {}, None
    for part in assignments.split(" "):
        if "=" in part:
            name, value = part.split("=", 1)
            env[name] = value
        else:  # a value with a space in it
            env[name] += " " + part
    return env


@pytest.mark.parametrize("assignments", list(SETTING_TYPOS))
def test_a_setting_with_a_typo_is_refused_naming_the_variable_the_value_and_the_valid_values(assignments):
    with pytest.raises(SettingsError) as refused:
        read_settings(_env(assignments))
    assert str(refused.value).startswith(SETTING_TYPOS[assignments]), str(refused.value)


def test_good_settings_pass():
    assert read_settings({}).target == "local"
    read_settings({"TAXI_TARGET": "gcp", "GCP_PROJECT_ID": "test-project", "GCP_BUCKET_NAME": "taxi-bucket",
                   "GCP_LOCATION": "europe-west1", "TAXI_SOURCE_URL": "file:///tmp/mirror",
                   "TAXI_TLC_URL": "http://127.0.0.1:8000", "TAXI_SCHEDULE_CRON": "*/5 * * * *"})


def _user_env(tmp_path: Path, http_mirror, **extra: str) -> dict[str, str]:
    (tmp_path / "dagster").mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")  # as DAGSTER_HOME=$PWD has it
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("TAXI_", "GCP_"))},
            "DAGSTER_HOME": str(tmp_path / "dagster"), "TAXI_HOME": str(tmp_path / "taxi"),
            "TAXI_SOURCE_URL": http_mirror.url, "TAXI_TLC_URL": http_mirror.url, **extra}


def _first_line(output: str) -> str:
    """What a user reads first: the output less Dagster's own warning that `job execute` is superseded."""
    lines = [line for line in output.splitlines() if line.strip() and "Supersession" not in line
             and "return callback(" not in line]
    return lines[0] if lines else ""


# What each path says: keys that parse as dates reach the run, whose first step refuses them
# (the run is FAILURE, with our message); `2020-04` and `abc` Dagster itself refuses while
# creating the run (no run at all); `dg launch` checks every key against the partitions first.
KEYS = ["2020-04-15", "2018-12-01", "this month", "2020-04", "abc"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("command", ["dagster job execute", "dg launch"])
def test_a_wrong_key_on_the_cli_asks_nothing_of_the_source_and_writes_nothing(command, key, tmp_path, http_mirror):
    key = _this_month() if key == "this month" else key
    asked = len(http_mirror.requests) + len(http_mirror.heads)
    argv = ([str(BIN / "dagster"), "job", "execute", "-m", "taxi_pipeline.definitions", "-j", "green_taxi_job",
             "--tags", json.dumps({"dagster/partition": key})] if command == "dagster job execute" else
            [str(BIN / "dg"), "launch", "--job", "green_taxi_job", "--partition", key])
    done = subprocess.run(argv, cwd=ROOT, env=_user_env(tmp_path, http_mirror), capture_output=True, text=True,
                          timeout=180, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert len(http_mirror.requests) + len(http_mirror.heads) == asked  # the source was not asked
    assert not (tmp_path / "taxi").exists()  # no bucket, no warehouse
    if command == "dg launch":
        expected = f"Could not find a partition with key `{key}`"
    elif key in ("2020-04", "abc"):
        expected = f"time data '{key}' does not match format"
    else:
        expected = f"NotAMonthError: partition key '{key}' is not a month: use YYYY-MM-01"
    assert expected in output, output[-3000:]
    print(f"\n{command} {key!r}: " + next(line for line in output.splitlines() if expected in line).strip()[:200])


@pytest.mark.parametrize("assignments", ["TAXI_TARGET=bigqeury", "TAXI_SOURCE=relase"])
def test_a_setting_typo_fails_the_load_before_any_run_exists(assignments, tmp_path, http_mirror):
    env = _user_env(tmp_path, http_mirror, **_env(assignments))
    done = subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "taxi_pipeline.definitions", "-j",
                           "green_taxi_job", "--tags", json.dumps({"dagster/partition": "2020-04-01"})],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode != 0
    assert _first_line(done.stderr) == f"taxi_pipeline: {SETTING_TYPOS[assignments]}", done.stderr[:2000]
    with DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert instance.get_runs() == []
    assert not (tmp_path / "taxi").exists()
