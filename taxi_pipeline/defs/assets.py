"""The asset factory: raw file in the bucket -> staging table -> merged main table, per colour."""

import time

import dagster as dg

from taxi_pipeline.defs.partitions import MONTHLY_PARTITIONS, partition_month
from taxi_pipeline.defs.resources import SourceResource, TargetResource
from taxi_pipeline.defs.run_tags import tag_run
from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.sources.csvgz import InvalidFileError
from taxi_pipeline.lib.sources.http import download

# DuckDB allows one writing process per file, and BigQuery serialises DML on a table: one pool
# slot for warehouse steps keeps concurrent runs from failing each other.
WAREHOUSE_POOL = "warehouse"


def raw_asset_key(colour: Colour) -> dg.AssetKey:
    return dg.AssetKey(f"{colour.name}_raw_csv")


def staging_asset_key(colour: Colour) -> dg.AssetKey:
    return dg.AssetKey(f"{colour.name}_staging")


def main_asset_key(colour: Colour) -> dg.AssetKey:
    return dg.AssetKey(colour.main_table)


def table_schema(colour: Colour) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn("unique_row_id", "STRING"), dg.TableColumn("filename", "STRING")]
        + [dg.TableColumn(c.name, c.type.value) for c in colour.columns]
    )


def build_colour_assets(colour: Colour, store_kind: str, warehouse_kind: str) -> list[dg.AssetsDefinition]:
    """The three monthly assets of one colour; `*_kind` only label them in the UI."""
    common = {"partitions_def": MONTHLY_PARTITIONS, "group_name": colour.name}
    table = {"kinds": {"sql", warehouse_kind}, "pool": WAREHOUSE_POOL, **common}

    @dg.asset(
        key=raw_asset_key(colour), kinds={"csv", store_kind}, **common,
        description=f"The month's {colour.name} trip file, downloaded from the release, validated "
        "(intact gzip, exact header, row count) and kept in the bucket. One object per month.",
    )
    def raw_csv(context: dg.AssetExecutionContext, source: SourceResource, target: TargetResource):
        month = partition_month(context)
        tag_run(context, colour, month)
        started = time.monotonic()
        key = colour.object_key(month)
        url = source.url(key)
        store = target.store()
        # The object is published only once the whole file is downloaded and valid: re-runs
        # replace it, and a failed run leaves the previous object untouched.
        with store.write(key) as pending:
            got = download(url, pending.path, colour.header, source.retry_settings(), context.log.info)
            pending.metadata.update(rows=str(got.data_rows), md5=got.md5_hex, source_url=url)
        stored = store.stat(key)
        context.log.info(f"{key}: {got.data_rows:,} rows, {got.compressed_bytes:,} bytes -> {stored.uri}")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": got.data_rows,
            "bytes": dg.MetadataValue.int(got.compressed_bytes),
            "uncompressed_bytes": dg.MetadataValue.int(got.uncompressed_bytes),
            "uri": dg.MetadataValue.path(stored.uri),
            "source_url": dg.MetadataValue.url(url),
            "md5": got.md5_hex,
            "download_attempts": got.attempts,
            "duration_s": round(time.monotonic() - started, 2),
        })

    @dg.asset(
        key=staging_asset_key(colour), deps=[raw_csv], **table,
        description=f"The month's {colour.name} rows as a typed table `{colour.name}_tripdata_YYYY_MM`, "
        "with `unique_row_id` (one per source row) and `filename`. Rebuilt unless it was built from "
        "the same file bytes by the same code.",
    )
    def staging(context: dg.AssetExecutionContext, target: TargetResource):
        month = partition_month(context)
        tag_run(context, colour, month)
        started = time.monotonic()
        stored = target.store().stat(colour.object_key(month))
        if stored is None:
            raise FileNotFoundError(
                f"{colour.object_key(month)} is not in the bucket: materialize {raw_csv.key.to_user_string()} first"
            )
        result = target.warehouse().stage(colour, month, stored.uri, stored.metadata.get("md5"))
        if result.reused:
            context.log.info(f"{result.table} was built from this very file by this code: kept as it is")
        source_rows = int(stored.metadata["rows"])
        if result.rows != source_rows:
            raise InvalidFileError(
                colour.file_name(month),
                f"the warehouse read {result.rows:,} rows but the file has {source_rows:,} data lines",
            )
        return dg.MaterializeResult(metadata={
            "dagster/row_count": result.rows,
            "dagster/table_name": result.table,
            "dagster/column_schema": table_schema(colour),
            "reused": result.reused,
            "duration_s": round(time.monotonic() - started, 2),
        })

    @dg.asset(
        key=main_asset_key(colour), deps=[staging], **table,
        description=f"Every loaded month of {colour.name} trips, each source row exactly once. A "
        "month's merge inserts its new row ids and deletes its rows that left the source file.",
    )
    def main_table(context: dg.AssetExecutionContext, target: TargetResource):
        month = partition_month(context)
        tag_run(context, colour, month)
        started = time.monotonic()
        # Safe to re-run: the merge is one transaction keyed on unique_row_id.
        result = target.warehouse().merge(colour, month)
        context.log.info(
            f"{result.table} {month:%Y-%m}: +{result.inserted:,} -{result.deleted:,} rows, "
            f"{result.month_rows:,} for the month, {result.table_rows:,} in all"
        )
        return dg.MaterializeResult(metadata={
            "dagster/row_count": result.month_rows,
            "dagster/table_name": result.table,
            "dagster/column_schema": table_schema(colour),
            "inserted": result.inserted,
            "deleted": result.deleted,
            "table_rows": result.table_rows,
            "duration_s": round(time.monotonic() - started, 2),
        })

    return [raw_csv, staging, main_table]
