"""The peer: dlt loading the same file into DuckDB with write_disposition="merge".

Its fastest path: pyarrow reads the gzip CSV in batches (types inferred), dlt normalises and
merges on a primary key. The file has no natural key, so the key is file name + line number.
"""

import sys
import time

import dlt
import pyarrow as pa
import pyarrow.csv as pacsv

path, database, work = sys.argv[1:4]
file_name = path.rsplit("/", 1)[-1]


@dlt.resource(name="yellow_tripdata", write_disposition="merge", primary_key="row_key")
def trips():
    reader = pacsv.open_csv(pa.input_stream(path, compression="gzip"),
                            read_options=pacsv.ReadOptions(block_size=16 << 20))
    line = 2
    for batch in reader:
        keys = pa.array([f"{file_name}:{n}" for n in range(line, line + batch.num_rows)])
        line += batch.num_rows
        yield pa.Table.from_batches([batch]).append_column("row_key", keys)


started = time.monotonic()
pipeline = dlt.pipeline(
    pipeline_name="bench_yellow", destination=dlt.destinations.duckdb(database),
    dataset_name="zoomcamp", pipelines_dir=work,
)
pipeline.run(trips())
with pipeline.sql_client() as client:
    [(rows,)] = client.execute_sql("SELECT count(*) FROM yellow_tripdata")
print(rows, round(time.monotonic() - started, 2))
