"""The analytics models (the bundled dbt project) on the embedded target: built through the real dbt
assets on a real DuckDB file, they equal a computation straight from the source files, whatever the
order the months were loaded in, and a corrected month replaces its rows in every model."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from taxi_pipeline.defs.analytics import THROUGH
from taxi_pipeline.lib.colours import GREEN, YELLOW
from taxi_pipeline_tests.helpers.analytics import (
    build_analytics,
    expected_revenue,
    fact_and_main_counts,
    mart_revenue,
)
from taxi_pipeline_tests.helpers.support import (
    MIRROR,
    copy_mirror,
    load_month,
    make_resources,
    read_csv_gz,
    table_checksum,
    write_csv_gz,
)

MONTHS = [(GREEN, "2019-10"), (YELLOW, "2020-01"), (GREEN, "2020-04"), (YELLOW, "2021-01")]


def _file(colour, month: str, mirror: Path = MIRROR) -> Path:
    return mirror / colour.name / f"{colour.name}_tripdata_{month}.csv.gz"


def _assert_models_equal_the_sources(home: Path, months, mirror: Path = MIRROR) -> None:
    files = {(colour.name, month): _file(colour, month, mirror) for colour, month in months}
    assert mart_revenue(home) == expected_revenue(files)
    fact, main = fact_and_main_counts(home)
    assert fact == main and len(fact) == len(months)


def _built_months(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    [line] = [r.user_message for r in instance.all_logs(result.run_id) if "dbt build:" in r.user_message]
    return line


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_months_loaded_in_calendar_order_reach_every_model_once(taxi_home, http_mirror, instance):
    resources = make_resources(taxi_home, http_mirror.url)
    for half in (MONTHS[:2], MONTHS[2:]):
        for colour, month in half:
            assert load_month(colour, f"{month}-01", resources, instance=instance).success
        result = build_analytics(taxi_home, instance)
        assert result.success
    assert "replaced in the models: 2020-04, 2021-01" in _built_months(instance, result)
    _assert_models_equal_the_sources(taxi_home, MONTHS)
    # Each model's materialization records the newest main-table materialization its build saw.
    fact = instance.get_latest_materialization_event(dg.AssetKey("fct_trips")).asset_materialization
    assert fact.metadata[THROUGH].value > 0


def test_an_older_month_after_a_newer_one_and_a_corrected_month_replace_their_rows(tmp_path, taxi_home, instance):
    mirror = copy_mirror(tmp_path / "mirror")
    resources = make_resources(taxi_home, mirror.as_uri())
    for half in (MONTHS[:1:-1], MONTHS[1::-1]):  # newest first: 2021-01, 2020-04, then 2020-01, 2019-10
        for colour, month in half:
            assert load_month(colour, f"{month}-01", resources, instance=instance).success
        assert build_analytics(taxi_home, instance).success
    _assert_models_equal_the_sources(taxi_home, MONTHS)

    # The TLC corrects green 2020-04: 2,000 trips withdrawn, fares of others changed.
    header, rows = read_csv_gz(_file(GREEN, "2020-04"))
    total = header.index("total_amount")
    corrected = [row[:total] + [f"{float(row[total]) + 1:.2f}"] + row[total + 1:] if i % 7 == 0 else row
                 for i, row in enumerate(rows[2_000:])]
    write_csv_gz(_file(GREEN, "2020-04", mirror), header, corrected)
    loaded = table_checksum(taxi_home, YELLOW)
    assert load_month(GREEN, "2020-04-01", resources, instance=instance, tags={"accept_shrink": "false"}).success
    result = build_analytics(taxi_home, instance)
    assert result.success and "replaced in the models: 2020-04" in _built_months(instance, result)
    _assert_models_equal_the_sources(taxi_home, MONTHS, mirror)
    assert table_checksum(taxi_home, YELLOW) == loaded  # dbt wrote only its own models
