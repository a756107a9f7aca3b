"""`adopt <colour>`: converts a main table of another shape or layout (the course's Kestra table,
this project's earlier one) to this project's layout, once, keeping every row."""

from __future__ import annotations

import argparse

from taxi_pipeline.cli.open_admin import open_admin
from taxi_pipeline.lib.colours import COLOURS

HELP = "convert a main table of another shape or layout (the course's Kestra table), keeping every row"
DESCRIPTION = """Converts <colour>_tripdata in TAXI_DATASET, on the target TAXI_TARGET selects, to this
project's layout, keeping every row and value:

  - unique_row_id: Kestra's 16-byte MD5 (BYTES / BLOB), or the 32 hex digits of this project's earlier
    layout, becomes the same MD5 as this project's 16-byte id (UHUGEINT in DuckDB, BYTES in BigQuery);
  - every column is cast to this project's type; columns the table lacks are added, NULL;
  - on DuckDB, the rows become one table per month (<colour>_tripdata_YYYY_MM) under a view named
    <colour>_tripdata, in one transaction; tables already named like month tables (the staging
    copies Kestra or this project's earlier layout kept) are replaced, and each is listed with its
    rows; one that holds a month the main table does not is refused;
  - on BigQuery, file_month is derived from filename (green_tripdata_2020-04.csv -> 2020-04-01) and
    the table is partitioned by file_month and clustered by the pickup time and zone. BigQuery cannot change
    partitioning in place, so the table is rebuilt beside the old one, checked (rows per file), and
    swapped in by renaming; the old table is kept as <colour>_tripdata__backup until the new one
    is verified (with --keep-backup, afterwards too).

This also converts a table of this project's earlier layout (hex ids; on DuckDB, every month in one
table), which the loads refuse until then. Kestra's ids never equal this project's: the next load of each month
deletes that month's adopted rows and inserts the month anew, exactly once each. A table that is
already this project's is left as it is. Stop the colour's schedules and runs while adopting."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("adopt", help=HELP, description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("colour", choices=list(COLOURS), help="the colour whose main table to convert")
    parser.add_argument("--keep-backup", action="store_true",
                        help="BigQuery: keep the old table as <colour>_tripdata__backup afterwards")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    admin = open_admin()
    result = admin.adopt(COLOURS[args.colour], args.keep_backup)
    if not result.changes:
        print(f"{result.table} is already this project's layout: nothing to do ({result.rows:,} rows)")
        return 0
    print(f"adopted {result.table} ({admin.warehouse_label}):")
    for change in result.changes:
        print(f"  {change}")
    print(f"kept every row: {result.rows:,} rows in {len(result.files)} files, the same per file as before:")
    for filename, count in result.files:
        print(f"  {filename:<32} {count:>12,} rows")
    if result.backup:
        print(f"the table as it was is kept as {result.backup}")
    print("the next load of each of these months replaces its rows with this project's")
    return 0
