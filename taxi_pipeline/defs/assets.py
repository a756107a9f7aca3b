"""The asset factory: raw file in the bucket -> staging table -> merged main table, per colour.

The assets ask the source resource which file serves the month and never look at its format:
the source validates the bytes, and the warehouse reads the object as the format it was given.
The month's load itself is `lib/month_load.py`; the bodies here turn its results into
materializations and log lines.
"""

import time

import dagster as dg

from taxi_pipeline.defs.partitions import MONTHLY_PARTITIONS, partition_month
from taxi_pipeline.defs.publishing import describe, run_finished
from taxi_pipeline.defs.resources import SourceResource
from taxi_pipeline.defs.run_tags import tag_run
from taxi_pipeline.defs.runs import reap_dead_runs
from taxi_pipeline.defs.target import TargetResource
from taxi_pipeline.defs.user_errors import user_errors
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.month_load import FileRefusedError, MonthLoad
from taxi_pipeline.lib.shrink import ACCEPT_TAG
from taxi_pipeline.lib.targets.base import Target


def raw_asset_key(colour: Colour) -> dg.AssetKey:
    return dg.AssetKey(f"{colour.name}_raw_file")


def staging_asset_key(colour: Colour) -> dg.AssetKey:
    return dg.AssetKey(f"{colour.name}_staging")


def main_asset_key(colour: Colour) -> dg.AssetKey:
    return dg.AssetKey(colour.main_table)


def table_schema(colour: Colour) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                "unique_row_id", "16 bytes",
                description="MD5 of the file name and the row's fields (copies numbered apart), as DuckDB's "
                "md5_number reads it: UHUGEINT in DuckDB, BYTES in BigQuery; in hex, printf('%032x', "
                "unique_row_id) and TO_HEX(unique_row_id) (the MD5's bytes reversed, not md5()'s hex)",
            ),
            dg.TableColumn("filename", "STRING"),
        ]
        + [dg.TableColumn(c.name, c.type.value) for c in colour.columns]
    )


def build_colour_assets(colour: Colour, target: type[Target]) -> list[dg.AssetsDefinition]:
    """The three monthly assets of one colour. The target's kinds label them in the UI, and its
    pools queue concurrent runs' warehouse steps (DuckDB: the merges, while every step waits for
    the file's one writer lock anyway; BigQuery: one colour's merges, one DML per table at a time)."""
    common = {"partitions_def": MONTHLY_PARTITIONS, "group_name": colour.name}
    pools = target.pools(colour)
    table = {"kinds": {"sql", target.warehouse_kind}, **common}
    store_kind = target.store_kind

    @dg.asset(
        key=raw_asset_key(colour), kinds={store_kind}, **common,
        description=f"The month's {colour.name} trip file as its source publishes it (the course's "
        "release: gzipped CSV up to 2021-07; the TLC: Parquet), validated as it streams "
        "(docs/loading.md) and kept in the bucket: one object per month.",
    )
    def raw_file(context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
        with user_errors(context):
            return load_raw_file(colour, context, source, target)

    @dg.asset(
        key=staging_asset_key(colour), deps=[raw_file], pool=pools["staging"], **table,
        description=f"The month's {colour.name} rows as a typed table `{colour.name}_tripdata_YYYY_MM`, "
        "with `unique_row_id` (one per source row) and `filename`. Rebuilt unless it was built from "
        "the same file bytes by the same code.",
    )
    def staging(context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
        with user_errors(context):
            yield from stage_month(colour, context, source, target)

    @dg.asset(
        key=main_asset_key(colour), deps=[staging], pool=pools["merge"], **table,
        description=f"Every loaded month of {colour.name} trips, each source row exactly once. A "
        "month's merge inserts its new row ids and deletes its rows that left the source file "
        "(or that another source's file of the month left).",
    )
    def main_table(context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
        with user_errors(context):
            yield from merge_into_main_table(colour, context, source, target)

    return [raw_file, staging, main_table]


def month_load(colour: Colour, context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource,
               warehouse: bool = True) -> MonthLoad:
    """This run's load of its month; the run is tagged with the file on the way."""
    month = partition_month(context)
    choice = source.choice()
    file = choice.locate(colour, month)  # fails at once, with the reason, if no source has it
    tag_run(context, colour, file)
    others = tuple(s.locate(colour, month) for s in (choice.release, choice.tlc))
    return MonthLoad(
        colour, month, file, target.store(), target.warehouse(context.log.info) if warehouse else None,
        context.run.run_id, lambda run_id: run_finished(context.instance, run_id), context.log.info, others,
    )


def month_object_record(colour: Colour, context: dg.AssetExecutionContext, load: MonthLoad,
                        **extra: object) -> dg.AssetMaterialization:
    """A materialization of the raw asset that describes the month's object as it now is. The
    steps yield it after each move (a yielded event is kept even when the step then fails), so the
    raw asset's latest materialization says which file is loaded."""
    return dg.AssetMaterialization(
        asset_key=raw_asset_key(colour), partition=context.partition_key,
        metadata={**describe(load.objects.month_object()), **extra},
    )


def load_raw_file(colour: Colour, context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
    """The raw file asset's body: download the month's file, validated, into the run's pending key."""
    for run_id in reap_dead_runs(context.instance):
        context.log.warning(f"run {run_id}: its process is gone (killed); marked FAILURE, its pool slots freed")
    started = time.monotonic()
    load = month_load(colour, context, source, target, warehouse=False)
    file = load.file
    context.log.info(f"{file.file_name}: from the {file.source} source, {file.url}")
    done = load.download(source.choice().for_month(load.month), source.retry_settings())
    for leftover in done.leftovers:
        context.log.info(f"{leftover}: removed, a part file of a download that was killed")
    got, stored = done.download, done.stored
    unknown = got.details.get("unknown_columns", "")
    if unknown:
        context.log.warning(
            f"{file.file_name} has column(s) {colour.name} does not know yet: {unknown}; loaded "
            f"without them (add them to the colour in lib/colours.py and re-run the month to keep them)"
        )
    context.log.info(f"{file.object_key}: {got.data_rows:,} rows, {got.bytes:,} bytes -> {stored.uri}")
    return dg.MaterializeResult(metadata={
        "state": f"pending: becomes the month's object when {colour.main_table} has merged it",
        "month_object_md5": done.month_object.metadata.get("md5", "") if done.month_object else "none",
        "dagster/row_count": got.data_rows,
        "file": file.file_name,
        "source": file.source,
        "format": file.format,
        "bytes": dg.MetadataValue.int(got.bytes),
        "uri": dg.MetadataValue.path(stored.uri),
        "source_url": dg.MetadataValue.url(file.url),
        "md5": got.md5_hex,
        # What the source said about the file: the sensor re-loads the month when these change.
        **got.tokens.as_asset_metadata(),
        "unknown_columns": unknown,
        "download_attempts": got.attempts,
        "duration_s": round(time.monotonic() - started, 2),
    })


def stage_month(colour: Colour, context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
    """The staging asset's body: stage the run's file (after any file a killed run left merging)."""
    started = time.monotonic()
    load = month_load(colour, context, source, target)
    for run_id in load.recover():
        yield month_object_record(colour, context, load, finished_for_run=run_id)
    try:
        staged = load.stage(context.run.tags.get(ACCEPT_TAG) == "true", context.partition_key)
    except FileRefusedError as exc:
        context.log.error(f"{load.file.file_name}: rejected, kept as {exc.rejected.uri}; the month's object is unchanged")
        yield month_object_record(colour, context, load, rejected_uri=dg.MetadataValue.path(exc.rejected.uri),
                                  rejected_md5=exc.rejected.metadata.get("md5", ""), rejected_error=str(exc)[:1000])
        raise
    result = staged.result
    if result.reused:
        context.log.info(f"{result.table} was built from this very file by this code: kept as it is")
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": result.rows,
        "dagster/table_name": result.table,
        "dagster/column_schema": table_schema(colour),
        "file": load.file.file_name,
        "staged_uri": dg.MetadataValue.path(staged.stored.uri),
        "reused": result.reused,
        "duration_s": round(time.monotonic() - started, 2),
        **result.metadata,
    })


def merge_into_main_table(colour: Colour, context: dg.AssetExecutionContext, source: SourceResource,
                          target: TargetResource):
    """The main table asset's body: merge the month from the run's file, then move it into place."""
    started = time.monotonic()
    load = month_load(colour, context, source, target)
    for run_id in load.recover():
        yield month_object_record(colour, context, load, finished_for_run=run_id)
    merged = load.merge()
    if merged.moved is not None:
        yield month_object_record(colour, context, load)
    result = merged.result
    context.log.info(
        f"{result.table} {load.month:%Y-%m}: +{result.inserted:,} -{result.deleted:,} rows, "
        f"{result.month_rows:,} for the month, {result.table_rows:,} in all"
    )
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": result.month_rows,
        "dagster/table_name": result.table,
        "dagster/column_schema": table_schema(colour),
        "file": load.file.file_name,
        "source": load.file.source,
        "inserted": result.inserted,
        "deleted": result.deleted,
        "table_rows": result.table_rows,
        "duration_s": round(time.monotonic() - started, 2),
        **result.metadata,
    })
