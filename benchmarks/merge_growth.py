"""Stages and merges the same month under N month names into one growing main table; prints the
seconds each merge took, as JSON.

The first and the last month are also staged and merged a second time right away with a changed
fingerprint (a corrected file: the merge counts the ids that changed and swaps the month), so both
kinds of merge are timed with 1 and with N months in the table.
"""

import datetime as dt
import json
import sys
import time

from taxi_pipeline.lib.colours import YELLOW
from taxi_pipeline.lib.raw_file import RawFile
from taxi_pipeline.lib.warehouses.duckdb.warehouse import DuckDBWarehouse

path, database, months, memory_limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
warehouse = DuckDBWarehouse(database, "zoomcamp", memory_limit=memory_limit)


def timed_merge(month: dt.date) -> tuple[float, object]:
    name = f"yellow_tripdata_{month:%Y-%m}.csv"
    raw = RawFile(path, name, "csv")
    warehouse.stage(YELLOW, month, raw)
    started = time.monotonic()
    result = warehouse.merge(YELLOW, month, raw)
    return round(time.monotonic() - started, 2), result


merges = []
for i in range(months):
    month = dt.date(2019 + i // 12, i % 12 + 1, 1)
    seconds, result = timed_merge(month)
    merge = {"month": f"{month:%Y-%m}", "merge_s": seconds, "inserted": result.inserted,
             "table_rows": result.table_rows}
    if i in (0, months - 1):
        merge["rerun_s"], rerun = timed_merge(month)
        merge["rerun_inserted"] = rerun.inserted
    merges.append(merge)
print(json.dumps(merges))
