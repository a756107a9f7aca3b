"""`python -m taxi_pipeline.counts`: rows per file in each main table of the embedded warehouse."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import duckdb

from taxi_pipeline.lib.colours import COLOURS
from taxi_pipeline.lib.identifiers import validate_identifier


def main() -> int:
    path = Path(os.environ.get("TAXI_HOME", ".taxi")) / "warehouse.duckdb"
    dataset = validate_identifier("dataset", os.environ.get("TAXI_DATASET", "zoomcamp"))
    if not path.exists():
        print(f"no warehouse at {path}: load a month first", file=sys.stderr)
        return 1
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {name for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [dataset]
        ).fetchall()}
        for colour in COLOURS.values():
            if colour.main_table not in tables:
                continue
            rows = con.execute(
                f'SELECT filename, count(*), count(DISTINCT unique_row_id) FROM "{dataset}"."{colour.main_table}" '
                "GROUP BY 1 ORDER BY 1"
            ).fetchall()
            print(f"{dataset}.{colour.main_table}")
            for filename, count, distinct in rows:
                print(f"  {filename:<32} {count:>12,} rows  {distinct:>12,} distinct unique_row_id")
    return 0


if __name__ == "__main__":
    sys.exit(main())
