"""`counts`: rows and distinct ids per file in each main table of the selected target."""

from __future__ import annotations

import argparse
import sys

from taxi_pipeline.cli.open_admin import open_admin
from taxi_pipeline.lib.colours import COLOURS
from taxi_pipeline.lib.warehouses.shape import ADOPT_COMMAND

HELP = "rows and distinct unique_row_id per file in each main table"
DESCRIPTION = f"""{HELP.capitalize()}, on the target TAXI_TARGET selects.

Safe while runs load: it only reads. On the embedded DuckDB file, which a writing process holds
for itself, it reads a snapshot copy of the file instead, and says so on stderr."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("counts", help=HELP, description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    admin = open_admin()
    tables = admin.main_tables(list(COLOURS.values()))
    for note in admin.notes:
        print(f"note: {note}", file=sys.stderr)
    for table in tables:
        print(table.qualified)
        if not table.report.is_ours:
            print(f"  (not this project's layout: see `{ADOPT_COMMAND.format(colour=table.colour.name)}`)")
        for filename, count, distinct in table.files:
            print(f"  {filename:<32} {count:>12,} rows  {distinct:>12,} distinct unique_row_id")
    return 0
