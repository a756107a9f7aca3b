"""The analytics models (a dbt project) as assets downstream of the colours' main tables, the job that
builds them, and the sensor that builds them once the months being loaded have landed.

A dbt source table named like a colour's main table (`green_tripdata`, `yellow_tripdata`) is that
colour's main-table asset, whatever the source's name, database or schema. Each build records in its
materializations the newest main-table materialization it saw (`THROUGH`); the next build replaces
the months merged after the oldest such record of the models it builds (see `lib.analytics.plan`).
"""


import datetime as dt
import re
import sys
from collections.abc import Iterator

import dagster as dg

# Dagster's backfill statuses are not exported at the top level (1.13).
from dagster._core.execution.backfill import BulkActionStatus
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from taxi_pipeline.defs.assets import main_asset_key
from taxi_pipeline.defs.jobs import job_name
from taxi_pipeline.defs.runs import IN_FLIGHT, unfinished_runs
from taxi_pipeline.defs.target import TargetResource
from taxi_pipeline.lib.analytics.plan import BuildPlan, plan_build
from taxi_pipeline.lib.analytics.project import AnalyticsProject, AnalyticsProjectError
from taxi_pipeline.lib.colours import COLOURS

ANALYTICS_JOB = "analytics_job"
GROUP = "analytics"
THROUGH = "taxi/main_tables_through"  # the storage id of the newest main-table materialization a build saw
_MAIN_KEYS = {colour.main_table: main_asset_key(colour) for colour in COLOURS.values()}
_LOCKED = "Could not set lock"  # DuckDB's words when another process writes the file
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROGRESS = re.compile(r"\d+ of \d+ ")  # "1 of 13 ERROR creating sql view model ..."
_WHAT_FAILED = re.compile(r"(Failure|Runtime Error|Database Error|Compilation Error) in ")


class TaxiDbtTranslator(DagsterDbtTranslator):
    """A source table named like a main table is that main table's asset; every model is in the
    `analytics` group."""

    def get_asset_key(self, dbt_resource_props) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source" and dbt_resource_props["name"] in _MAIN_KEYS:
            return _MAIN_KEYS[dbt_resource_props["name"]]
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props) -> str:
        return GROUP


def _newest_storage_id(instance: dg.DagsterInstance) -> int:
    records = [instance.fetch_materializations(key, limit=1).records for key in _MAIN_KEYS.values()]
    return max((r[0].storage_id for r in records if r), default=0)


def _months_merged_after(instance: dg.DagsterInstance, storage_id: int) -> set[dt.date]:
    months: set[dt.date] = set()
    for key in _MAIN_KEYS.values():
        cursor = None
        while True:
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=storage_id), limit=1000, cursor=cursor)
            months |= {dt.date.fromisoformat(r.partition_key) for r in result.records if r.partition_key}
            if not result.has_more:
                break
            cursor = result.cursor
    return months


def _newest_loaded(instance: dg.DagsterInstance) -> dt.date | None:
    keys = [k for key in _MAIN_KEYS.values() for k in instance.get_materialized_partitions(key)]
    return max((dt.date.fromisoformat(k) for k in keys), default=None)


def plan_for(context: dg.AssetExecutionContext, project: AnalyticsProject) -> tuple[BuildPlan, int]:
    """The build's plan, and the storage id it runs through."""
    instance = context.instance
    through = _newest_storage_id(instance)
    latest = instance.get_latest_materialization_events(list(context.selected_asset_keys))
    recorded = [event.asset_materialization.metadata.get(THROUGH) if event and event.asset_materialization else None
                for event in latest.values()]
    built_before = bool(recorded) and all(r is not None for r in recorded)
    since = min(int(r.value) for r in recorded) if built_before else 0
    plan = plan_build(_months_merged_after(instance, since), _newest_loaded(instance),
                      built_before=built_before, months_aware=project.bundled)
    return plan, through


def build_analytics_assets(project: AnalyticsProject, pool: str | None) -> dg.AssetsDefinition:
    try:
        manifest = project.prepare()
    except AnalyticsProjectError as exc:  # the first line a user reads, above the loader's traceback
        print(f"taxi_pipeline: {exc}", file=sys.stderr, flush=True)
        raise

    @dbt_assets(manifest=manifest, dagster_dbt_translator=TaxiDbtTranslator(), name="analytics",
                pool=pool)
    def analytics(context: dg.AssetExecutionContext, dbt: DbtCliResource, target: TargetResource):
        """`dbt build` of the analytics models: the months merged since their last build."""
        plan, through = plan_for(context, project)
        context.log.info(f"dbt build: {plan.reason}")
        project.write_profile()
        yield from _build(context, dbt, target, plan, through, project)

    return analytics


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, target: TargetResource, plan: BuildPlan,
           through: int, project: AnalyticsProject) -> Iterator:
    args = [*plan.dbt_args(), "--profiles-dir", str(project.profiles_dir)]
    target_path = project.state_dir / "runs" / context.run.run_id
    while True:
        # Both main tables exist (a colour with no month yet is an empty one). On the embedded
        # warehouse this waits for the file as a loading step does (the same log line), and dbt
        # starts as soon as it is free; a loading step that took the file in between makes dbt
        # fail before it builds anything, and then it waits again.
        target.warehouse(context.log.info).ensure_main_tables(COLOURS.values())
        invocation = dbt.cli(args, context=context, raise_on_error=False, target_path=target_path)
        built = 0
        for event in invocation.stream():
            if isinstance(event, dg.Output):
                built += 1
                event = event.with_metadata({**event.metadata, THROUGH: dg.MetadataValue.int(through)})
            yield event
        if invocation.is_successful():
            return
        error = str(invocation.get_error())
        if _LOCKED in error and built == 0:
            context.log.info("dbt found the warehouse taken by a loading step before it started: waiting again")
            continue
        raise dg.Failure(description=f"dbt build failed: {_first_error(invocation)}",
                         metadata={"dbt's errors": dg.MetadataValue.md(f"```\n{_ANSI.sub('', error)}\n```"),
                                   "loaded months": "untouched: dbt writes only its own models"})


def _first_error(invocation) -> str:
    """dbt's own words for the first thing that failed, on one line: what failed (a model or a
    test, with its file), then the engine's or the test's reason."""
    messages = [_ANSI.sub("", m) for m in invocation._error_messages]  # dagster-dbt has no public list
    lines = [line.strip() for m in messages if not _PROGRESS.match(m.strip()) for line in m.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return f"dbt exited with code {invocation.process.returncode} without saying why (was it killed?)"
    reason = next((line for line in lines[1:] if not _WHAT_FAILED.match(line)), None)
    return f"{lines[0]}: {reason}" if reason else lines[0]


class _DbtCommand(DbtCliResource):
    """dbt as a command only. dagster-dbt also opens dbt's adapter inside this process, for metadata
    this project does not ask for (row counts, column schemas); dbt runs from a venv of its own
    (scripts/dbt-setup), not this process's, so that would fail and log a traceback at every build."""

    def _initialize_dbt_core_adapter(self, args):
        return None


def dbt_resource(project: AnalyticsProject) -> DbtCliResource:
    # No usage statistics and no version check: both ask dbt Labs' servers, which a machine may
    # not reach, on every invocation. The profile is passed with each command (`--profiles-dir`):
    # it is written when dbt is about to run, and the resource must not require it at load.
    return _DbtCommand(project_dir=str(project.project_dir), dbt_executable=project.executable,
                          global_config_flags=["--no-send-anonymous-usage-stats", "--no-version-check"])


def build_analytics_job():
    return dg.define_asset_job(
        ANALYTICS_JOB, selection=dg.AssetSelection.groups(GROUP),
        description="Builds the analytics models (dbt) on the main tables: the months merged since their last build.",
        tags={"taxi": "analytics"},
    )


def build_analytics_sensor(job, interval_s: int = 30) -> dg.SensorDefinition:
    load_jobs = {job_name(colour) for colour in COLOURS.values()}

    @dg.sensor(job=job, name="analytics_sensor", minimum_interval_seconds=interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Builds the analytics models once the months being loaded (a backfill's included) "
                           "have landed: one build after many merges.")
    def analytics_sensor(context: dg.SensorEvaluationContext):
        instance = context.instance
        through = _newest_storage_id(instance)
        if through <= int(context.cursor or 0):
            return dg.SkipReason("no month merged since the last analytics build was launched")
        in_flight = [run for run in unfinished_runs(instance, dg.RunsFilter(statuses=list(IN_FLIGHT)))
                     if run.job_name in load_jobs | {ANALYTICS_JOB}]
        if in_flight:
            return dg.SkipReason(f"waiting for {len(in_flight)} run(s) in flight to end ({in_flight[0].job_name} "
                                 f"{in_flight[0].run_id[:8]}, ...)")
        backfills = instance.get_backfills(status=BulkActionStatus.REQUESTED)
        if backfills:
            return dg.SkipReason(f"waiting for backfill {backfills[0].backfill_id} to end")
        context.update_cursor(str(through))
        return dg.RunRequest(run_key=f"through-{through}", tags={"trigger": "analytics_sensor"})

    return analytics_sensor
