"""A publication sensor per colour: loads a month as soon as its file appears at the source, and
again when the source replaces it (the TLC republishes files now and then).

Each evaluation sends one HEAD per recent month (cheap: no body), so a daily interval is enough
for a source that publishes monthly. A month is launched with `reason=new` if it is published
and not loaded, `reason=changed` if its ETag, Content-Length or Last-Modified differ from what the
raw file's materialization recorded, `reason=missing` if Dagster recorded it as loaded but the
warehouse has no rows of it (deleted or dropped by hand: the warehouse is what counts); never while a run of it is queued or in progress, whoever
launched it, and never when it is loaded and unchanged. The run key names the file's change
tokens, so one publication is launched once: a month whose file is bad fails once, and is tried
again when the source replaces the file (or by hand).
"""

import datetime as dt

import dagster as dg

from taxi_pipeline.defs.launching import (
    changes, has_unfinished_run, loaded_partitions, recent_months, recorded_tokens,
)
from taxi_pipeline.defs.resources import SourceResource, TargetResource
from taxi_pipeline.defs.run_tags import run_tags
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.sources.http import probe

SENSOR_TRIGGER_TAG = "trigger"
LOOKBACK_MONTHS = 12  # the TLC has republished files months later; older months are left to hand
DAILY = 24 * 60 * 60


def sensor_name(colour: Colour) -> str:
    return f"{colour.name}_taxi_sensor"


def build_colour_sensor(
    colour: Colour, job, interval_s: int | None = None, lookback_months: int | None = None,
) -> dg.SensorDefinition:
    """`interval_s` and `lookback_months` override the daily interval and the months looked at."""
    lookback = lookback_months or LOOKBACK_MONTHS

    @dg.sensor(
        name=sensor_name(colour), job=job, minimum_interval_seconds=interval_s or DAILY,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Daily: a HEAD request per month of the last {lookback}; launches a "
        f"{colour.name} month when its file appears at the source (reason=new) or changes "
        "(reason=changed: ETag, Content-Length or Last-Modified differ from the loaded file's).",
    )
    def publication(context: dg.SensorEvaluationContext, source: SourceResource, target: TargetResource):
        choice = source.choice()
        loaded = loaded_partitions(context.instance, colour, target)
        requests, notes = [], []
        for key, month in recent_months(dt.datetime.now(dt.UTC), lookback):
            if not choice.can_serve(month) or has_unfinished_run(context.instance, colour, key):
                continue
            file = choice.locate(colour, month)
            published = probe(file.url, source.timeout_s)
            if published is None:
                notes.append(f"{month:%Y-%m} not published")
                continue
            if key not in loaded.partitions:
                if loaded.missing(key):
                    reason, detail = "missing", f"recorded as loaded by Dagster, but {loaded.source} has no rows of it"
                else:
                    reason, detail = "new", "published, not loaded"
            else:
                recorded = recorded_tokens(context.instance, colour, key)
                differ = changes(recorded, published) if recorded else []
                if not differ:
                    continue
                reason, detail = "changed", "; ".join(differ)
            context.log.info(f"{file.file_name}: {reason} ({detail})")
            token = published.etag or f"{published.content_length}/{published.last_modified}"
            requests.append(dg.RunRequest(
                # A failed new or changed file is not retried every day: the next change is.
                # Rows deleted by hand are loaded again whenever they are missing.
                run_key=None if reason == "missing" else f"{key}:{token}", partition_key=key,
                tags={SENSOR_TRIGGER_TAG: "sensor", "reason": reason,
                      **run_tags(colour, file, launched_by_backfill=False)},
            ))
        if requests:
            return requests
        return dg.SkipReason(
            "; ".join(notes) or f"every published month is loaded (per {loaded.source}) and unchanged"
        )

    return publication
