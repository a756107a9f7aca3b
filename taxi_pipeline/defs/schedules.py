"""Monthly schedules: on the 1st, load the month that just ended, once the source has it.

Sources publish a month weeks after it ends (the TLC: 3-9 weeks), so each tick also looks back a
few months: a month skipped because it was not published yet is launched by a later tick, or at
once by the colour's sensor. A month that is loaded, or has a run queued or in progress (whoever
launched it), is left alone.
"""

import datetime as dt

import dagster as dg

from taxi_pipeline.defs.launching import Loaded, loaded_partitions, recent_months, unfinished_run, waiting_for
from taxi_pipeline.defs.resources import SourceResource, TargetResource
from taxi_pipeline.defs.run_tags import run_tags
from taxi_pipeline.defs.sensors import probe_retry
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.sources.http import SourceUnavailableError, probe

SCHEDULE_TRIGGER_TAG = {"trigger": "schedule"}
LOOKBACK_MONTHS = 3


def schedule_name(colour: Colour) -> str:
    return f"{colour.name}_taxi_schedule"


def monthly_cron(colour: Colour) -> str:
    return f"0 {colour.schedule_hour_utc} 1 * *"


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
    def monthly(context: dg.ScheduleEvaluationContext, source: SourceResource, target: TargetResource):
        return evaluate_schedule(colour, context, source, target)

    return monthly


def evaluate_schedule(colour: Colour, context: dg.ScheduleEvaluationContext, source: SourceResource,
                      target: TargetResource):
    """One tick: the run requests for the recent months to load, or the reason to skip."""
    choice = source.choice()
    found: dict[str, list[str]] = {"waiting": [], "unserved": [], "held": [], "unreachable": [], "busy": []}
    requests = []
    loaded = loaded_partitions(context.instance, colour, target)
    for key, month in recent_months(context.scheduled_execution_time, LOOKBACK_MONTHS):
        try:
            request, kind, note = _month_request(colour, context, source, loaded, key, month)
        except SourceUnavailableError as exc:
            found["unreachable"].append(str(exc))
            break  # the other months are at the same source
        requests += [request] if request else []
        if kind:
            found[kind].append(note)
    return requests or dg.SkipReason(_skip_reason(found, choice.mode, loaded.source))


def _month_request(colour: Colour, context: dg.ScheduleEvaluationContext, source: SourceResource, loaded: Loaded,
                   key: str, month: dt.date) -> tuple[dg.RunRequest | None, str | None, str]:
    """A month's run request, or what the skip reason says of it (its kind and note)."""
    choice = source.choice()
    if not choice.can_serve(month):
        return None, "unserved", f"{month:%Y-%m}"
    if key in loaded.partitions:
        return None, "held", f"{month:%Y-%m}"
    if (run := unfinished_run(context.instance, colour, key)) is not None:
        return None, "busy", f"{month:%Y-%m} waits for {waiting_for(run)}"
    file = choice.locate(colour, month)
    if probe(file.url, probe_retry(source), context.log.info) is None:
        return None, "waiting", file.file_name
    tags = {**SCHEDULE_TRIGGER_TAG, **run_tags(colour, file, launched_by_backfill=False)}
    if loaded.missing(key):
        tags["reason"] = "missing"
        context.log.info(f"{month:%Y-%m}: Dagster recorded it as loaded, but {loaded.source} has no rows of it")
    return dg.RunRequest(run_key=key, partition_key=key, tags=tags), None, ""


def _skip_reason(found: dict[str, list[str]], mode: str, loaded_from: str) -> str:
    unreachable, held = found["unreachable"], found["held"]
    reasons = [f"cannot reach the source: {unreachable[0]}; the next tick (and the sensor) looks again"] if unreachable else []
    if found["waiting"]:
        reasons.append(f"not published at the source yet: {', '.join(found['waiting'])}")
    reasons += found["busy"]
    if found["unserved"]:
        reasons.append(f"no source configured for {', '.join(found['unserved'])} (TAXI_SOURCE={mode})")
    if held and not reasons:
        reasons.append(f"all loaded ({', '.join(held)} in {loaded_from})")
    elif held:  # where the loaded months were looked up: Dagster's records stand in while the warehouse is busy
        reasons.append(f"loaded: {', '.join(held)} (in {loaded_from})")
    return "; ".join(reasons) or "all loaded"
