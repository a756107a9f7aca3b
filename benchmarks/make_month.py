"""Builds a realistic month from real rows: the bundled yellow 2021-01 head, resampled (seeded)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from taxi_pipeline.lib.colours import YELLOW
from taxi_pipeline.lib.warehouses.duckdb import sql

HEAD = Path(__file__).parents[1] / "taxi_pipeline_tests/data/mirror/yellow/yellow_tripdata_2021-01.csv.gz"
SHIFT_SPAN_S = 28 * 86_400  # pickups move by up to four weeks, so resampled rows rarely coincide


def make_month(dest: Path, rows: int, seed: int = 42, cache: Path | None = None) -> Path:
    """Row j is head row hash(j, seed) mod n with both timestamps shifted by the same j-derived
    offset: real values, a real distribution, deterministic for a seed. Written gzipped. With
    `cache`, a month built before with the same rows and seed is linked instead (same bytes)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if cache is not None:
        cached = cache / f"month_{int(rows)}_{int(seed)}.csv.gz"
        if not cached.exists():
            make_month(cached, rows, seed)
        os.link(cached, dest)
        return dest
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    con.execute(
        "CREATE TABLE head AS SELECT row_number() OVER () - 1 AS i, * FROM "
        + sql.read_raw_csv(YELLOW), {"path": str(HEAD)},
    )
    [(n,)] = con.execute("SELECT count(*) FROM head").fetchall()
    fields = ", ".join(
        f"strftime(CAST(h.{sql.q(c.name)} AS TIMESTAMP) + to_seconds((g.j * 7919) % {SHIFT_SPAN_S}), "
        f"'%Y-%m-%d %H:%M:%S') AS {sql.q(c.name)}" if c.type.name == "TIMESTAMP" else f"h.{sql.q(c.name)}"
        for c in YELLOW.csv_columns
    )
    con.execute(
        f"COPY (SELECT {fields} FROM range({int(rows)}) g(j) JOIN head h ON h.i = hash(g.j, {int(seed)}) % {n} "
        f"ORDER BY g.j) TO '{dest}' (HEADER, DELIMITER ',', COMPRESSION gzip)"
    )
    con.close()
    return dest


# The TLC's yellow types from 2025-01 on (era C: the schema of https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2025-01.parquet).
_ERA_C = {
    "VendorID": "INTEGER", "passenger_count": "BIGINT", "RatecodeID": "BIGINT", "PULocationID": "INTEGER",
    "DOLocationID": "INTEGER", "payment_type": "BIGINT", "store_and_fwd_flag": "VARCHAR",
}


def make_parquet_month(csv_month: Path, dest: Path, rows: int) -> Path:
    """The first `rows` rows of a built CSV month as a TLC Parquet file of era C: its exact types,
    `Airport_fee` (the capitalised spelling) and `cbd_congestion_fee`, ZSTD. Streamed by DuckDB."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    fields = []
    for c in YELLOW.csv_columns:
        name = sql.q(c.name)
        if c.type.name == "TIMESTAMP":
            fields.append(f"CAST({name} AS TIMESTAMP) AS {name}")
        elif c.name in _ERA_C and _ERA_C[c.name] != "VARCHAR":
            fields.append(f"CAST(CAST({name} AS DOUBLE) AS {_ERA_C[c.name]}) AS {name}")
        elif c.name in _ERA_C:
            fields.append(name)
        else:
            fields.append(f"CAST({name} AS DOUBLE) AS {name}")
    # Doubles, as the TLC's money columns are (DuckDB would type the literals DECIMAL(3, 2)).
    fields.append("CAST(CASE WHEN PULocationID IN ('132', '138') THEN 1.75 ELSE 0.0 END AS DOUBLE) AS Airport_fee")
    fields.append("CAST(CASE WHEN hash(tpep_pickup_datetime) % 3 = 0 THEN 0.75 ELSE 0.0 END AS DOUBLE) "
                  "AS cbd_congestion_fee")
    con.execute(
        f"COPY (SELECT {', '.join(fields)} FROM {sql.read_raw_csv(YELLOW)} LIMIT {int(rows)}) "
        f"TO '{dest}' (FORMAT parquet, COMPRESSION zstd)", {"path": str(csv_month)},
    )
    con.close()
    return dest
