"""A publication sensor per colour: loads a month as soon as its file appears at the source, and
again when the source replaces it (the TLC republishes files now and then).

Each look at the source sends one HEAD per recent month (cheap: no body), once a day by default.
A month is launched with `reason=new` if it is published and not loaded, `reason=changed` if its
ETag, Content-Length or Last-Modified differ from those of the month's object in the bucket (the
file the warehouse's month came from, not merely the last one downloaded), `reason=missing` if
Dagster recorded it as loaded but the warehouse has no rows of it (deleted or dropped by hand:
the warehouse is what counts); never while a run of it is queued or in progress, whoever launched
it, never when it is loaded and unchanged, and not again for a file the warehouse rejected (kept
under `rejected/`) until the source changes it. The run key names the file's change tokens, so one
publication is launched once.

A look that cannot reach the source (a reset, a stall, a 5xx, after the downloads' retries)
skips with that reason and looks again after `RETRY_S`, not a day later: the sensor ticks every
`RETRY_S` at most, and its cursor says when the next look is due.
"""

import datetime as dt
import json
import time

import dagster as dg

from taxi_pipeline.defs.launching import (
    Loaded,
    loaded_partitions,
    recent_months,
    recorded_tokens,
    unfinished_run,
    waiting_for,
)
from taxi_pipeline.defs.resources import SourceResource
from taxi_pipeline.defs.run_tags import run_tags
from taxi_pipeline.defs.runs import reap_dead_runs
from taxi_pipeline.defs.target import TargetResource
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.sources.change_tokens import ChangeTokens
from taxi_pipeline.lib.sources.http import RetrySettings, SourceUnavailableError, probe
from taxi_pipeline.lib.stores.base import ObjectStore, StoredObject
from taxi_pipeline.lib.stores.publication import MonthObjects

SENSOR_TRIGGER_TAG = "trigger"
LOOKBACK_MONTHS = 12  # the TLC has republished files months later; older months are left to hand
DAILY = 24 * 60 * 60
RETRY_S = 15 * 60  # after a look that could not reach the source


def sensor_name(colour: Colour) -> str:
    return f"{colour.name}_taxi_sensor"


def probe_retry(source: SourceResource) -> RetrySettings:
    """The downloads' backoff (same first delay, doubling, jitter), with fewer and shorter
    attempts: a tick must end within Dagster's 60 s evaluation timeout even if every attempt
    stalls (4 x 10 s + 1 + 2 + 4 s of backoff)."""
    return RetrySettings(min(source.attempts, 4), source.first_retry_delay_s, max_delay_s=8.0,
                         timeout_s=min(source.timeout_s, 10.0))


def _tokens(stored: StoredObject | None) -> ChangeTokens | None:
    """The change tokens the source gave for the object's file, as kept in its metadata."""
    return None if stored is None else ChangeTokens.from_metadata(stored.metadata)


def _at(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_colour_sensor(
    colour: Colour, job, interval_s: int | None = None, lookback_months: int | None = None,
) -> dg.SensorDefinition:
    """`interval_s` and `lookback_months` override the daily interval and the months looked at."""
    lookback = lookback_months or LOOKBACK_MONTHS
    interval = interval_s or DAILY

    @dg.sensor(
        name=sensor_name(colour), job=job, minimum_interval_seconds=min(interval, RETRY_S),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Daily: a HEAD request per month of the last {lookback}; launches a "
        f"{colour.name} month when its file appears at the source (reason=new) or changes "
        "(reason=changed: ETag, Content-Length or Last-Modified differ from the loaded file's). "
        f"If the source cannot be reached, it skips and looks again after {RETRY_S // 60} minutes.",
    )
    def source_sensor(context: dg.SensorEvaluationContext, source: SourceResource, target: TargetResource):
        return evaluate_sensor(colour, context, source, target, interval, lookback)

    return source_sensor


def evaluate_sensor(colour: Colour, context: dg.SensorEvaluationContext, source: SourceResource,
                    target: TargetResource, interval: int, lookback: int):
    """One tick: the run requests for the months to load, or the reason to skip."""
    # Every tick, not only on a look at the source: a killed run's pool slot holds merges back.
    for run_id in reap_dead_runs(context.instance):
        context.log.warning(f"run {run_id}: its process is gone (killed); marked FAILURE, its pool slots freed")
    now = time.time()
    cursor = json.loads(context.cursor) if context.cursor else {}
    due = float(cursor.get("next_look_at", 0))
    if now < due:
        return dg.SkipReason(f"looked at the source at {_at(cursor['looked_at'])}; next look at {_at(due)}")
    loaded = loaded_partitions(context.instance, colour, target)
    store = target.store()
    requests, notes, unreachable = [], [], None
    for key, month in recent_months(dt.datetime.now(dt.UTC), lookback):
        try:
            request, note = _month_request(colour, context, source, store, loaded, key, month)
        except SourceUnavailableError as exc:
            unreachable = str(exc)  # the other months are at the same source: stop here
            break
        requests += [request] if request else []
        notes += [note] if note else []
    next_look = now + (min(RETRY_S, interval) if unreachable else interval)
    context.update_cursor(json.dumps({"looked_at": now, "next_look_at": next_look}))
    if unreachable:
        notes.insert(0, f"cannot reach the source: {unreachable}; looking again at {_at(next_look)}")
    if requests:
        return requests
    return dg.SkipReason("; ".join(notes) or f"every published month is loaded (per {loaded.source}) and unchanged")


def _month_request(colour: Colour, context: dg.SensorEvaluationContext, source: SourceResource,
                   store: ObjectStore, loaded: Loaded, key: str, month: dt.date,
                   ) -> tuple[dg.RunRequest | None, str | None]:
    """A month's run request, or the note a skip reason gives for it (both None: nothing to say)."""
    choice = source.choice()
    if not choice.can_serve(month):
        return None, None
    if (run := unfinished_run(context.instance, colour, key)) is not None:
        return None, f"{month:%Y-%m} waits for {waiting_for(run)}"
    file = choice.locate(colour, month)
    served = probe(file.url, probe_retry(source), context.log.info)
    if served is None:
        return None, f"{month:%Y-%m} not published"
    objects = MonthObjects(store, file.object_key)
    reason, detail = _reason(colour, context, loaded, key, objects, served)
    if reason is None:
        return None, None
    rejected = objects.rejected()
    if reason != "missing" and rejected is not None and not served.changes_from(_tokens(rejected)):
        return None, (f"{month:%Y-%m}: the source's file was rejected ({rejected.metadata.get('error', '?')}); "
                      "waiting for the source to change it")
    context.log.info(f"{file.file_name}: {reason} ({detail})")
    token = served.etag or f"{served.content_length}/{served.last_modified}"
    return dg.RunRequest(
        # A failed new or changed file is not retried every day: the next change is.
        # Rows deleted by hand are loaded again whenever they are missing.
        run_key=None if reason == "missing" else f"{key}:{token}", partition_key=key,
        tags={SENSOR_TRIGGER_TAG: "sensor", "reason": reason, **run_tags(colour, file, launched_by_backfill=False)},
    ), None


def _reason(colour: Colour, context: dg.SensorEvaluationContext, loaded: Loaded, key: str, objects: MonthObjects,
            served: ChangeTokens) -> tuple[str | None, str]:
    """Why the month is to be loaded (`new`, `missing`, `changed`), with the detail; None: it is not."""
    if key not in loaded.partitions:
        if loaded.missing(key):
            return "missing", f"recorded as loaded by Dagster, but {loaded.source} has no rows of it"
        return "new", "published, not loaded"
    recorded = _tokens(objects.month_object()) or recorded_tokens(context.instance, colour, key)
    differ = served.changes_from(recorded) if recorded else []
    return ("changed", "; ".join(differ)) if differ else (None, "")
