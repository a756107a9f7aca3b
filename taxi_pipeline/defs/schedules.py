"""Monthly schedules: on the 1st, load the month that just ended, once the source has it.

The release publishes a month some time after it ends, so each tick also looks back a few months:
a month skipped because it was not published yet is launched by a later tick. A month that is
already loaded, or has a run queued or in progress, is left alone (a schedule's run keys only
deduplicate within one tick).
"""

import datetime as dt

import dagster as dg

from taxi_pipeline.defs.assets import main_asset_key
from taxi_pipeline.defs.partitions import MONTHLY_PARTITIONS
from taxi_pipeline.defs.resources import SourceResource
from taxi_pipeline.defs.run_tags import run_tags
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.sources.http import is_published

SCHEDULE_TRIGGER_TAG = {"trigger": "schedule"}
LOOKBACK_MONTHS = 3
_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def schedule_name(colour: Colour) -> str:
    return f"{colour.name}_taxi_schedule"


def monthly_cron(colour: Colour) -> str:
    return f"0 {colour.schedule_hour_utc} 1 * *"


def months_to_check(tick: dt.datetime, lookback: int = LOOKBACK_MONTHS) -> list[dg.TimeWindow]:
    """The month that just ended at `tick`, then the ones before it, newest first."""
    windows: list[dg.TimeWindow] = []
    before = tick
    while len(windows) < lookback:
        window = MONTHLY_PARTITIONS.get_prev_partition_window(before)
        if window is None:
            break
        windows.append(window)
        before = window.start
    return windows


def build_colour_schedule(colour: Colour, job, cron: str | None = None) -> dg.ScheduleDefinition:
    """`cron` overrides the monthly cron (tests use every minute); the months targeted are always
    those that ended before the tick, as with Dagster's partitioned schedules."""

    @dg.schedule(
        name=schedule_name(colour), job=job, cron_schedule=cron or monthly_cron(colour),
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{colour.schedule_hour_utc:02d}:00 UTC on the 1st: loads the month that just "
        f"ended (and any of the {LOOKBACK_MONTHS - 1} before it published late); skips months the "
        "source does not have yet.",
    )
    def monthly(context: dg.ScheduleEvaluationContext, source: SourceResource):
        requests, waiting = [], []
        loaded = context.instance.get_materialized_partitions(main_asset_key(colour))
        for window in months_to_check(context.scheduled_execution_time):
            month = window.start.date()
            key = MONTHLY_PARTITIONS.get_partition_key_for_timestamp(window.start.timestamp())
            if key in loaded or _has_unfinished_run(context.instance, colour, key):
                continue
            if not is_published(source.url(colour.object_key(month)), source.timeout_s):
                waiting.append(colour.file_name(month))
                continue
            requests.append(dg.RunRequest(
                run_key=key, partition_key=key,
                tags={**SCHEDULE_TRIGGER_TAG, **run_tags(colour, month, launched_by_backfill=False)},
            ))
        if not requests:
            reason = f"not published at the source yet: {', '.join(waiting)}" if waiting else "all loaded"
            return dg.SkipReason(reason)
        return requests

    return monthly


def _has_unfinished_run(instance: dg.DagsterInstance, colour: Colour, partition_key: str) -> bool:
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={"taxi": colour.name, "dagster/partition": partition_key}, statuses=_UNFINISHED),
        limit=1,
    )
    return bool(runs)
