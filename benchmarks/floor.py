"""The floor: DuckDB loading the gzip file into a typed table, with the pipeline's settings."""

import sys
import time

import duckdb

from taxi_pipeline.lib import duckdb_sql as sql
from taxi_pipeline.lib.colours import YELLOW

path, database, memory_limit = sys.argv[1:4]
columns = ", ".join(f"'{c.name}': '{sql.TYPES[c.type]}'" for c in YELLOW.columns)
con = duckdb.connect(database)
con.execute(f"SET memory_limit = '{memory_limit}'")
con.execute("SET threads = 2")
con.execute("SET preserve_insertion_order = false")
started = time.monotonic()
con.execute(
    "CREATE TABLE floor AS SELECT * FROM read_csv($path, header = true, auto_detect = false, "
    f"columns = {{{columns}}})", {"path": path},
)
print(con.execute("SELECT count(*) FROM floor").fetchone()[0], round(time.monotonic() - started, 2))
