"""The asset factory: raw file in the bucket -> staging table -> merged main table, per colour.

The assets ask the source resource which file serves the month and never look at its format:
the source validates the bytes, and the warehouse reads the object as the format it was given.
"""

import time
from collections.abc import Callable

import dagster as dg

from taxi_pipeline.defs.partitions import MONTHLY_PARTITIONS, partition_month
from taxi_pipeline.defs.publishing import Publication
from taxi_pipeline.defs.resources import SourceResource, TargetResource
from taxi_pipeline.defs.run_tags import tag_run
from taxi_pipeline.defs.runs import reap_dead_runs
from taxi_pipeline.defs.user_errors import user_errors
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.raw_file import RawFile, layout_from_json
from taxi_pipeline.lib.shrink import ACCEPT_TAG, check_shrink
from taxi_pipeline.lib.sources.base import InvalidFileError, SourceFile
from taxi_pipeline.lib.sources.http import download
from taxi_pipeline.lib.stores.base import ObjectStore, StoredObject
from taxi_pipeline.lib.stores.publication import DOWNLOADED, STATE, MonthObjects
from taxi_pipeline.lib.warehouses.base import MergeResult, StageResult, Warehouse


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


def raw_file_of(stored: StoredObject, file: SourceFile) -> RawFile:
    """An object in the bucket as the warehouse reads it."""
    return RawFile(
        stored.uri, file.file_name, file.format, stored.metadata.get("md5"),
        layout_from_json(stored.metadata.get("layout")), int(stored.metadata["rows"]),
    )


def stored_raw_file(store: ObjectStore, file: SourceFile, run_id: str | None = None) -> tuple[StoredObject, RawFile]:
    """What the staging step reads: the run's pending file if the run downloaded one (staging
    reads it by its own URI: it is not the month's object until its month is published), else
    the month's object; fails if the bucket has neither."""
    stored = MonthObjects(store, file.object_key).pending(run_id) if run_id else None
    stored = stored or store.stat(file.object_key)
    if stored is None:
        raise FileNotFoundError(
            f"{file.object_key} is not in the bucket: materialize the month's raw file first "
            f"(source {file.source})"
        )
    return stored, raw_file_of(stored, file)


def stage_object(warehouse: Warehouse, colour: Colour, month, file: SourceFile, stored: StoredObject) -> StageResult:
    """Stages the object; a warehouse that reads another row count than the validator counted
    refuses the file like a bad value."""
    result = warehouse.stage(colour, month, raw_file_of(stored, file))
    source_rows = int(stored.metadata["rows"])
    if result.rows != source_rows:
        quoted = stored.metadata.get("first_quote_line")
        why = (f": line {quoted} holds a quoted field, and a line break inside quotes makes two lines one row "
               "(the release's files quote nothing)") if quoted else ""
        raise InvalidFileError(
            file.file_name, f"the warehouse read {result.rows:,} rows but the file has {source_rows:,} lines of data{why}",
        )
    return result


def loaded_month_object(store: ObjectStore, source: SourceResource, colour: Colour, month) -> StoredObject | None:
    """The month's object the warehouse's month came from: of the month's files at every source
    (a switch of source replaces the month), the one published last."""
    choice = source.choice()
    found = [store.stat(s.locate(colour, month).object_key) for s in (choice.release, choice.tlc)]
    return max((o for o in found if o is not None), key=lambda o: o.metadata.get("publication_at", ""), default=None)


def merge_object(warehouse: Warehouse, colour: Colour, month, file: SourceFile, stored: StoredObject,
                 then: Callable[[], None] | None = None) -> MergeResult:
    """Merges the month from the table staged from `stored` (safe to re-run: one transaction
    keyed on unique_row_id); `then` moves the file into the month's place once it has committed."""
    return warehouse.merge(colour, month, raw_file_of(stored, file), then)


def build_colour_assets(colour: Colour, target: type[TargetResource]) -> list[dg.AssetsDefinition]:
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
        "release: gzipped CSV up to 2021-07; the TLC: Parquet), validated on the way (CSV: intact "
        "gzip, exact header, rows; Parquet: PAR1 at both ends, size, footer, a schema the colour "
        "knows) and kept in the bucket. One object per month.",
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


def load_raw_file(colour: Colour, context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
    """The raw file asset's body: download the month's file, validated, into the run's pending key."""
    month = partition_month(context)
    for run_id in reap_dead_runs(context.instance):
        context.log.warning(f"run {run_id}: its process is gone (killed); marked FAILURE, its pool slots freed")
    choice = source.choice()
    chosen = choice.for_month(month)  # fails at once, with the reason, if no source has it
    file = chosen.locate(colour, month)
    tag_run(context, colour, file)
    started = time.monotonic()
    store = target.store()
    context.log.info(f"{file.file_name}: from the {file.source} source, {file.url}")
    # The download goes to the run's pending key once whole and valid; it becomes the month's
    # object only when the merge has published its month (`defs.publishing`).
    objects = MonthObjects(store, file.object_key)
    for leftover in store.remove_leftovers(f"{colour.name}/pending/"):
        context.log.info(f"{leftover}: removed, a part file of a download that was killed")
    with store.write(objects.pending_key(context.run.run_id)) as pending:
        got = download(
            file.url, pending.path, lambda: chosen.validator(colour, file), source.retry_settings(),
            context.log.info,
        )
        pending.metadata.update({
            "rows": str(got.data_rows), "md5": got.md5_hex, "source_url": file.url,
            "source": file.source, "format": file.format, "file_name": file.file_name,
            **got.published.as_metadata(), **{k: v for k, v in got.details.items() if v},
            STATE: DOWNLOADED,
        })
    stored = objects.pending(context.run.run_id)
    unknown = got.details.get("unknown_columns", "")
    if unknown:
        context.log.warning(
            f"{file.file_name} has column(s) {colour.name} does not know yet: {unknown}; loaded "
            f"without them (add them to the colour in lib/colours.py and re-run the month to keep them)"
        )
    context.log.info(f"{file.object_key}: {got.data_rows:,} rows, {got.bytes:,} bytes -> {stored.uri}")
    month_object = objects.published()
    return dg.MaterializeResult(metadata={
        "state": f"pending: becomes the month's object when {colour.main_table} publishes it",
        "month_object_md5": month_object.metadata.get("md5", "") if month_object else "none",
        "dagster/row_count": got.data_rows,
        "file": file.file_name,
        "source": file.source,
        "format": file.format,
        "bytes": dg.MetadataValue.int(got.bytes),
        "uri": dg.MetadataValue.path(stored.uri),
        "source_url": dg.MetadataValue.url(file.url),
        "md5": got.md5_hex,
        # What the source said about the file: the sensor re-loads the month when these change.
        "etag": got.published.etag or "",
        "content_length": got.published.content_length if got.published.content_length is not None else -1,
        "last_modified": got.published.last_modified or "",
        "unknown_columns": unknown,
        "download_attempts": got.attempts,
        "duration_s": round(time.monotonic() - started, 2),
    })


def stage_month(colour: Colour, context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
    """The staging asset's body: stage the run's file (after any file a killed run left merging)."""
    month = partition_month(context)
    file = source.choice().locate(colour, month)
    tag_run(context, colour, file)
    started = time.monotonic()
    warehouse = target.warehouse(context.log.info)
    publication = Publication(context, MonthObjects(target.store(), file.object_key), raw_asset_key(colour))

    def stage(stored: StoredObject) -> StageResult:
        return stage_object(warehouse, colour, month, file, stored)

    yield from publication.finish_interrupted(stage, lambda stored, then: merge_object(
        warehouse, colour, month, file, stored, then))
    stored, _ = stored_raw_file(target.store(), file, context.run.run_id)
    pending = stored if stored.key != file.object_key else None
    try:
        if pending is not None and context.run.tags.get(ACCEPT_TAG) != "true":
            loaded = loaded_month_object(target.store(), source, colour, month)
            check_shrink(file.file_name, int(stored.metadata["rows"]),
                         int(loaded.metadata.get("rows", 0)) if loaded else None,
                         loaded.metadata.get("file_name", loaded.key) if loaded else "", context.partition_key)
        result = stage(stored)
    except InvalidFileError as exc:
        if pending is not None:
            yield publication.reject(pending, exc)  # yielded, so it is kept although the step fails
        raise
    publication.staged(pending)
    if result.reused:
        context.log.info(f"{result.table} was built from this very file by this code: kept as it is")
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": result.rows,
        "dagster/table_name": result.table,
        "dagster/column_schema": table_schema(colour),
        "file": file.file_name,
        "staged_uri": dg.MetadataValue.path(stored.uri),
        "reused": result.reused,
        "duration_s": round(time.monotonic() - started, 2),
        **result.metadata,
    })


def merge_into_main_table(colour: Colour, context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
    """The main table asset's body: merge the month from the run's file, then move it into place."""
    month = partition_month(context)
    choice = source.choice()
    file = choice.locate(colour, month)
    tag_run(context, colour, file)
    started = time.monotonic()
    warehouse = target.warehouse(context.log.info)
    publication = Publication(context, MonthObjects(target.store(), file.object_key), raw_asset_key(colour))

    def stage(stored: StoredObject) -> StageResult:
        return stage_object(warehouse, colour, month, file, stored)

    def merge(stored: StoredObject, then: Callable[[], None] | None) -> MergeResult:
        return merge_object(warehouse, colour, month, file, stored, then)

    yield from publication.finish_interrupted(stage, merge)
    pending = publication.to_merge()
    promoted: list[dg.AssetMaterialization] = []
    if pending is not None:
        result = merge(pending, lambda: promoted.append(publication.promote(pending)))
    else:  # a merge run on its own: the month's object is what is staged
        result = merge(stored_raw_file(target.store(), file)[0], None)
    yield from promoted
    context.log.info(
        f"{result.table} {month:%Y-%m}: +{result.inserted:,} -{result.deleted:,} rows, "
        f"{result.month_rows:,} for the month, {result.table_rows:,} in all"
    )
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": result.month_rows,
        "dagster/table_name": result.table,
        "dagster/column_schema": table_schema(colour),
        "file": file.file_name,
        "source": file.source,
        "inserted": result.inserted,
        "deleted": result.deleted,
        "table_rows": result.table_rows,
        "duration_s": round(time.monotonic() - started, 2),
        **result.metadata,
    })
