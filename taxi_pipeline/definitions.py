"""The code location: assembles the colours' assets, checks, jobs, schedules and sensors with the
source and the target."""

from __future__ import annotations

import dagster as dg

from taxi_pipeline.defs.analytics import (
    build_analytics_assets,
    build_analytics_job,
    build_analytics_sensor,
    dbt_resource,
)
from taxi_pipeline.defs.assets import build_colour_assets
from taxi_pipeline.defs.checks import build_main_table_check, build_schema_drift_check
from taxi_pipeline.defs.jobs import build_colour_job
from taxi_pipeline.defs.resources import build_resources, schedule_cron_override, sensor_overrides
from taxi_pipeline.defs.schedules import build_colour_schedule
from taxi_pipeline.defs.sensors import build_colour_sensor
from taxi_pipeline.lib.analytics.project import project_for
from taxi_pipeline.lib.colours import COLOURS
from taxi_pipeline.lib.targets import from_environment


@dg.definitions
def defs() -> dg.Definitions:
    resources = build_resources()
    target = from_environment()  # what the target resource will make at run time, for its kinds and pools
    jobs = {name: build_colour_job(colour) for name, colour in COLOURS.items()}
    assets = [a for c in COLOURS.values() for a in build_colour_assets(c, type(target))]
    sensors = [build_colour_sensor(c, jobs[name], **sensor_overrides()) for name, c in COLOURS.items()]
    project = project_for(target.analytics_output())
    if project is not None:  # the analytics models, downstream of the main tables
        assets.append(build_analytics_assets(project, target.analytics_pool()))
        jobs["analytics"] = build_analytics_job()
        sensors.append(build_analytics_sensor(jobs["analytics"]))
        resources["dbt"] = dbt_resource(project)
    return dg.Definitions(
        assets=assets,
        asset_checks=[check for c in COLOURS.values() for check in (build_main_table_check(c), build_schema_drift_check(c))],
        jobs=list(jobs.values()),
        schedules=[build_colour_schedule(c, jobs[name], schedule_cron_override()) for name, c in COLOURS.items()],
        sensors=sensors,
        resources=resources,
        # On a 2-core machine one process per run is ~3x faster than one process per step.
        executor=dg.in_process_executor,
    )
