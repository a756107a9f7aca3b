"""The peer: dlt loading the same file into DuckDB with write_disposition="merge" on a primary key.

    dlt_peer.py <gzip> <database> <work> documented   dlt's own CSV reader: `filesystem() | read_csv()`
    dlt_peer.py <gzip> <database> <work> arrow        a hand-written pyarrow resource: its fastest path

`documented` is what dlt's filesystem docs show: pandas chunks yielded as dicts. Its default
loader file format for DuckDB, `insert_values`, took 80 s for 300k rows here (7.7M would take
about 35 min), so it is given the parquet loader format, which dlt recommends for speed.
`arrow` yields pyarrow batches, which dlt writes to parquet without touching rows in Python.
The file has no natural key, so the key is the file name + line number in both.
"""

import itertools
import sys
import time
from pathlib import Path

import dlt
import pyarrow as pa
import pyarrow.csv as pacsv
from dlt.sources.filesystem import filesystem, read_csv

path, database, work, mode = sys.argv[1:5]
file_name = Path(path).name


def documented():
    lines = itertools.count(2)
    files = filesystem(bucket_url=Path(path).parent.as_uri(), file_glob=file_name)
    return (files | read_csv()).add_map(lambda row: {**row, "row_key": f"{file_name}:{next(lines)}"})


@dlt.resource
def arrow():
    reader = pacsv.open_csv(pa.input_stream(path, compression="gzip"),
                            read_options=pacsv.ReadOptions(block_size=16 << 20))
    line = 2
    for batch in reader:
        keys = pa.array([f"{file_name}:{n}" for n in range(line, line + batch.num_rows)])
        line += batch.num_rows
        yield pa.Table.from_batches([batch]).append_column("row_key", keys)


started = time.monotonic()
rows = documented() if mode == "documented" else arrow()
rows.apply_hints(table_name="yellow_tripdata", write_disposition="merge", primary_key="row_key")
pipeline = dlt.pipeline(
    pipeline_name=f"bench_yellow_{mode}", destination=dlt.destinations.duckdb(database),
    dataset_name="zoomcamp", pipelines_dir=work,
)
pipeline.run(rows, loader_file_format="parquet")
with pipeline.sql_client() as client:
    [(count,)] = client.execute_sql("SELECT count(*) FROM yellow_tripdata")
print(count, round(time.monotonic() - started, 2))
