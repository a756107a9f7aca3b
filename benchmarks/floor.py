"""The floor: DuckDB loading the file into a typed table, with the pipeline's settings.

    floor.py <gzip> <database> <memory_limit>          CREATE TABLE AS SELECT * FROM read_csv(...)
    floor.py <gzip> <database> <memory_limit> --ids    the same plus a row id: our staging statement alone
    floor.py <parquet> <database> <memory_limit> --parquet    CREATE TABLE AS SELECT * FROM read_parquet(...)
    floor.py <parquet> <database> <memory_limit> --parquet-ids    the same plus the MD5 of the canonical text
    ... --colour green     a green file (default yellow)

Prints the rows, the seconds, and the database's used bytes after a checkpoint.

The second is what any loader that gives every row a content id (as Kestra's MD5 does) cannot do
without: the floor's parse and write, plus hashing every row and writing the id column. The fourth
is its Parquet twin: the columnar copy as the file types it, plus the id of each row's canonical
text (`rowid.py`), in one statement; ours also types every column (DECIMAL(38, 9) money).
"""

import sys
import time

import duckdb

from taxi_pipeline.lib.colours import COLOURS, LogicalType
from taxi_pipeline.lib.warehouses.duckdb import sql

path, database, memory_limit = sys.argv[1:4]
flags = [a for a in sys.argv[4:] if not a.startswith("--colour=")]
colour = COLOURS[next((a.split("=", 1)[1] for a in sys.argv[4:] if a.startswith("--colour=")), "yellow")]
with_ids = flags == ["--ids"]
parquet = flags == ["--parquet"]
parquet_ids = flags == ["--parquet-ids"]
columns = ", ".join(f"'{c.name}': '{sql.TYPES[c.type]}'" for c in colour.csv_columns)


def canonical_text_of_file_column(logical: LogicalType, name: str, kind: str) -> str:
    """A file column's canonical text straight from the type the file stores it in."""
    if kind in ("missing", "null"):
        return "NULL"
    if kind == "float" and logical is LogicalType.NUMERIC:
        if not hasattr(sql, "numeric_text"):  # the code before issue 19: the text of the typed decimal
            return sql.canonical_text(logical, f"CAST({name} AS DECIMAL(38, 9))")
        return sql.numeric_text(name)
    if kind == "float":  # a code stored as a double: its integer's text
        return f"CAST(CAST({name} AS BIGINT) AS VARCHAR)"
    return sql.canonical_text(logical, name)
con = duckdb.connect(database)
con.execute(f"SET memory_limit = '{memory_limit}'")
con.execute("SET threads = 2")
con.execute("SET preserve_insertion_order = false")
con.execute("SET enable_progress_bar = false")
started = time.monotonic()
if parquet:
    con.execute("CREATE TABLE floor AS SELECT * FROM read_parquet($path)", {"path": path})
    table = "floor"
elif parquet_ids:
    import pyarrow.parquet as pq  # only here: the other floors do not pay for its import

    from taxi_pipeline.lib.sources.parquet import check_schema

    layout, _ = check_schema(path, colour, pq.read_schema(path))
    texts = [canonical_text_of_file_column(c.type, sql.q(f.source or c.name), f.kind)
             for c, f in zip(colour.columns, layout, strict=True)]
    con.execute(f"CREATE TABLE floor AS SELECT {sql.row_id(texts)} AS unique_row_id, * FROM read_parquet($path)",
                {"path": path, "filename": path.rsplit("/", 1)[-1]})
    table = "floor"
elif with_ids:
    con.execute(sql.create_schema("bench"))
    con.execute(sql.create_staging_table("bench", colour, "floor"), {"path": path, "filename": path.rsplit("/", 1)[-1]})
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
