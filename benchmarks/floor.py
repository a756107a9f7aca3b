"""The floor: DuckDB loading the file into a typed table, with the pipeline's settings.

    floor.py <gzip> <database> <memory_limit>          CREATE TABLE AS SELECT * FROM read_csv(...)
    floor.py <gzip> <database> <memory_limit> --ids    the same plus a row id: our staging statement alone
    floor.py <parquet> <database> <memory_limit> --parquet    CREATE TABLE AS SELECT * FROM read_parquet(...)

Prints the rows, the seconds, and the database's used bytes after a checkpoint.

The second is what any loader that gives every row a content id (as Kestra's MD5 does) cannot do
without: the floor's parse and write, plus hashing every row and writing the id column.
"""

import sys
import time

import duckdb

from taxi_pipeline.lib.warehouses.duckdb import sql
from taxi_pipeline.lib.colours import YELLOW

path, database, memory_limit = sys.argv[1:4]
with_ids = sys.argv[4:] == ["--ids"]
parquet = sys.argv[4:] == ["--parquet"]
columns = ", ".join(f"'{c.name}': '{sql.TYPES[c.type]}'" for c in YELLOW.csv_columns)
con = duckdb.connect(database)
con.execute(f"SET memory_limit = '{memory_limit}'")
con.execute("SET threads = 2")
con.execute("SET preserve_insertion_order = false")
con.execute("SET enable_progress_bar = false")
started = time.monotonic()
if parquet:
    con.execute("CREATE TABLE floor AS SELECT * FROM read_parquet($path)", {"path": path})
    table = "floor"
elif with_ids:
    con.execute(sql.create_schema("bench"))
    con.execute(sql.create_staging_table("bench", YELLOW, "floor"), {"path": path, "filename": path.rsplit("/", 1)[-1]})
    table = "bench.floor"
else:
    con.execute(
        "CREATE TABLE floor AS SELECT * FROM read_csv($path, header = true, auto_detect = false, "
        f"columns = {{{columns}}})", {"path": path},
    )
    table = "floor"
seconds = round(time.monotonic() - started, 2)
con.execute("CHECKPOINT")
[(used,)] = con.execute("SELECT used_blocks * block_size FROM pragma_database_size()").fetchall()
print(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0], seconds, used)
