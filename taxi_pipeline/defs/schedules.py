"""Monthly schedules: on the 1st, load the month that just ended, once it is published."""

import dagster as dg

from taxi_pipeline.defs.partitions import MONTHLY_PARTITIONS
from taxi_pipeline.defs.resources import SourceResource
from taxi_pipeline.defs.run_tags import run_tags
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.source import is_published

SCHEDULE_TRIGGER_TAG = {"trigger": "schedule"}


def schedule_name(colour: Colour) -> str:
    return f"{colour.name}_taxi_schedule"


def monthly_cron(colour: Colour) -> str:
    return f"0 {colour.schedule_hour_utc} 1 * *"


def build_colour_schedule(
    colour: Colour, job, cron: str | None = None,
) -> dg.ScheduleDefinition:
    """`cron` overrides the monthly cron (tests use every minute); the target month is always the
    last complete one at the tick, as with Dagster's partitioned schedules."""

    @dg.schedule(
        name=schedule_name(colour), job=job, cron_schedule=cron or monthly_cron(colour),
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{colour.schedule_hour_utc:02d}:00 UTC on the 1st: loads the month that just "
        "ended; skips while the source has not published it.",
    )
    def monthly(context: dg.ScheduleEvaluationContext, source: SourceResource):
        ended = MONTHLY_PARTITIONS.get_prev_partition_window(context.scheduled_execution_time)
        if ended is None:
            return dg.SkipReason("no complete month yet: the partitions start in 2019-01")
        month = ended.start.date()
        partition_key = MONTHLY_PARTITIONS.get_partition_key_for_timestamp(ended.start.timestamp())
        url = source.url(colour.object_key(month))
        if not is_published(url, source.timeout_s):
            return dg.SkipReason(f"{colour.file_name(month)} is not published at the source yet ({url})")
        return dg.RunRequest(
            run_key=partition_key, partition_key=partition_key,
            tags={**SCHEDULE_TRIGGER_TAG, **run_tags(colour, month, launched_by_backfill=False)},
        )

    return monthly
