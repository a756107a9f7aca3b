"""`fresh-start <colour>|all`: everything the pipeline keeps about a colour, listed, then deleted.

What the course asks of its users by hand ("delete existing tables ... to start with a fresh
dataset"), limited to one colour of one dataset and one bucket prefix, and including what Dagster
remembers, so that afterwards no month counts as loaded anywhere.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taxi_pipeline.cli.open_admin import open_admin
from taxi_pipeline.cli.text import count, size
from taxi_pipeline.lib.admin.base import Admin, ObjectInfo, OperatorError, TableInfo
from taxi_pipeline.lib.colours import COLOURS, Colour

if TYPE_CHECKING:
    from taxi_pipeline.cli.records import AssetRecords, Records

HELP = "list (dry run) or delete (--yes) a colour's tables, bucket objects and Dagster records"
DESCRIPTION = """Starts a colour afresh on the target TAXI_TARGET selects. Without --yes, lists
exactly what would go and changes nothing. With --yes, deletes:

  - the main table <colour>_tripdata, the staging tables <colour>_tripdata_YYYY_MM and their
    leftovers (<colour>_tripdata_YYYY_MM__*, the course's <colour>_tripdata_YYYY_MM_ext, and
    <colour>_tripdata__* left by adopt) in TAXI_DATASET;
  - the bucket objects under <colour>/;
  - the materialization and check records of the colour's assets in the Dagster instance at
    $DAGSTER_HOME, so the UI, schedules and sensors see no month as loaded.

Nothing of another colour, dataset or bucket prefix is touched. --yes refuses while a run or
backfill of the colour is in flight."""


@dataclass(frozen=True)
class Plan:
    colour: Colour
    tables: list[TableInfo]
    objects: list[ObjectInfo]
    records: list[AssetRecords]
    in_flight: list[str]

    @property
    def empty(self) -> bool:
        return not (self.tables or self.objects or self.records)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("fresh-start", help=HELP, description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("colour", choices=[*COLOURS, "all"], help="the colour to start afresh, or all")
    parser.add_argument("--yes", action="store_true", help="delete what is listed (default: a dry run)")
    parser.set_defaults(run=run)


def colour_tables(colour: Colour) -> Callable[[str], bool]:
    """The tables of one colour: its main table, month tables and their leftovers, nothing else."""
    main = re.escape(colour.main_table)
    pattern = re.compile(rf"{main}(_\d{{4}}_\d{{2}}(__\w+|_ext)?|__\w+)?")
    return lambda name: pattern.fullmatch(name) is not None


def plan(admin: Admin, records: Records, colour: Colour) -> Plan:
    main = colour.main_table
    return Plan(
        colour,
        # The main table first: deleted first, so from then on no month counts as loaded.
        tables=sorted(admin.tables(colour_tables(colour)), key=lambda t: (t.name != main, t.name)),
        objects=admin.objects(f"{colour.name}/"),
        records=records.summary(colour),
        in_flight=records.activity(colour),
    )


def run(args: argparse.Namespace) -> int:
    from taxi_pipeline.cli.records import Records  # Dagster's import is slow: not for --help

    colours = list(COLOURS.values()) if args.colour == "all" else [COLOURS[args.colour]]
    records = Records()
    return start_afresh(open_admin(), records, colours, args.colour, yes=args.yes)


def start_afresh(admin: Admin, records: Records, colours: list[Colour], asked: str, *, yes: bool) -> int:
    plans = [plan(admin, records, colour) for colour in colours]
    for note in admin.notes:
        print(f"note: {note}", file=sys.stderr)
    mode = "deleting" if yes else "dry run, nothing is deleted; add --yes to delete"
    print(f"fresh-start {asked} ({mode})")
    for p in plans:
        show(p, admin, records)
    if not yes:
        return 0
    busy = [f"{p.colour.name}: {item}" for p in plans for item in p.in_flight]
    if busy:
        raise OperatorError("runs or backfills are in flight, which would write again; wait for them or "
                            "end them (the UI: Runs -> the run -> Terminate; a backfill: Overview -> Backfills -> "
                            "Cancel), then run fresh-start again:\n  " + "\n  ".join(busy))
    for p in plans:
        delete(p, admin, records)
    left = [plan(admin, records, colour) for colour in colours]
    if any(not p.empty for p in left):
        raise OperatorError("something was not deleted; run the dry run again to see what")
    print("done: " + ", ".join(f"no {c.name} table, object or record is left" for c in colours))
    return 0


def show(p: Plan, admin: Admin, records: Records) -> None:
    print(f"\n{p.colour.name}:")
    print(f"  tables in {admin.warehouse_label}:" + ("" if p.tables else " none"))
    for t in p.tables:
        if t.kind == "view":
            print(f"    {t.qualified:<52} {'view over the month tables':>29}")
        else:
            print(f"    {t.qualified:<52} {count(t.rows, 'row'):>17}  {size(t.bytes):>10}")
    print(f"  objects in {admin.bucket_label} under {p.colour.name}/:" + ("" if p.objects else " none"))
    for o in p.objects:
        print(f"    {o.key:<52} {size(o.size):>10}")
    print(f"  records in {records.label}:" + ("" if p.records else " none"))
    for r in p.records:
        print(f"    {r.key.to_user_string():<24} {r.describe()}")
    if p.in_flight:
        print("  in flight (--yes refuses until they end): " + "; ".join(p.in_flight))
    rows, table_bytes = sum(t.rows for t in p.tables), sum(t.bytes for t in p.tables)
    print(f"  total: {summary(p)} ({count(rows, 'row')} and {size(table_bytes)} in tables, "
          f"{size(sum(o.size for o in p.objects))} in objects)")


def summary(p: Plan) -> str:
    tables, objects = count(len(p.tables), "table"), count(len(p.objects), "object")
    return f"{tables}, {objects}, records of {count(len(p.records), 'asset')}"


def delete(p: Plan, admin: Admin, records: Records) -> None:
    admin.drop_tables([t.name for t in p.tables])
    admin.delete_objects([o.key for o in p.objects])
    records.wipe([r.key for r in p.records])
    print(f"deleted {p.colour.name}: {summary(p)}")
