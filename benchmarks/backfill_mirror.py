"""The course's 2019-2020 backfill as files: 48 months of green and yellow with the release's row
counts, built from real rows, laid out as the release serves them (`<colour>/<file>.csv.gz`).

Row counts: the release's exact yearly totals (the course's homework figures: DataTalksClub/data-engineering-zoomcamp, `cohorts/2023/week_3_data_warehouse/homework.md`) split
over the months as the TLC's monthly counts are (3.3), by largest remainder, so every year sums
exactly. A month's rows are real rows resampled with a fixed seed, as `make_month` does: yellow
from the bundled 2021-01 head (22,792 rows), green from the bundled complete 2020-10 (95,120).

Building 117M rows one month at a time would take ~20 minutes, so each colour has one pool of
distinct resampled rows, written once as gzip members of `BLOCK_ROWS` rows; a month is the header,
the first blocks of its colour's pool, and a last partial block of its own. Its rows are distinct
within the file (a month never repeats a block); across months they repeat, but a row's id is
also a function of its file's name, so every month has its own ids. gzip allows any number of
members in a file, and both the validator and DuckDB read them as one stream.
"""

from __future__ import annotations

import datetime as dt
import gzip
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import duckdb

from taxi_pipeline.lib.colours import GREEN, YELLOW, Colour
from taxi_pipeline.lib.warehouses.duckdb import sql

DATA = Path(__file__).parents[1] / "taxi_pipeline_tests/data/mirror"
HEADS = {"yellow": DATA / "yellow/yellow_tripdata_2021-01.csv.gz", "green": DATA / "green/green_tripdata_2020-10.csv.gz"}
YEAR_TOTALS = {("green", 2019): 6_044_050, ("green", 2020): 1_734_051,
               ("yellow", 2019): 84_399_019, ("yellow", 2020): 24_648_499}
TLC_MONTHS = {  # kestra_anchor.md 3.3: the TLC's own monthly counts, for the split only
    ("green", 2019): [672_105, 615_594, 643_063, 567_852, 545_452, 506_238, 470_743, 449_695, 449_063, 476_386,
                      449_500, 455_294],
    ("green", 2020): [447_770, 398_632, 223_496, 35_644, 57_361, 63_110, 72_258, 81_063, 87_987, 95_120, 88_605,
                      83_130],
    ("yellow", 2019): [7_696_617, 7_049_370, 7_866_620, 7_475_949, 7_598_445, 6_971_560, 6_310_419, 6_073_357,
                       6_567_788, 7_213_891, 6_878_111, 6_896_317],
    ("yellow", 2020): [6_405_008, 6_299_367, 3_007_687, 238_073, 348_415, 549_797, 800_412, 1_007_286, 1_341_017,
                       1_681_132, 1_509_000, 1_461_898],
}
BLOCK_ROWS = 100_000
SEED = 42
SHIFT_SPAN_S = 28 * 86_400


@dataclass(frozen=True)
class Month:
    colour: Colour
    month: dt.date
    rows: int

    @property
    def file_name(self) -> str:
        return f"{self.colour.name}_tripdata_{self.month:%Y-%m}.csv"

    @property
    def partition(self) -> str:
        return f"{self.month:%Y-%m-%d}"


def split(total: int, weights: list[int]) -> list[int]:
    """`total` in parts proportional to `weights`, summing exactly (largest remainder)."""
    shares = [Fraction(total * w, sum(weights)) for w in weights]
    parts = [int(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: shares[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def backfill_months(scale: Fraction = Fraction(1)) -> list[Month]:
    """The 48 months, each year's total scaled (1 = the release's real counts)."""
    months = []
    for colour in (GREEN, YELLOW):
        for year in (2019, 2020):
            total = round(YEAR_TOTALS[colour.name, year] * scale)
            for i, rows in enumerate(split(total, TLC_MONTHS[colour.name, year])):
                months.append(Month(colour, dt.date(year, i + 1, 1), rows))
    return months


def _rows_sql(colour: Colour, first: int, count: int, head_rows: int) -> str:
    """Rows first .. first + count - 1 of the colour's pool: head row hash(j) mod n, both
    timestamps shifted by the same j-derived offset (deterministic: one thread, in j order)."""
    fields = ", ".join(
        f"strftime(CAST(h.{sql.q(c.name)} AS TIMESTAMP) + to_seconds((g.j * 7919) % {SHIFT_SPAN_S}), "
        f"'%Y-%m-%d %H:%M:%S') AS {sql.q(c.name)}" if c.type.name == "TIMESTAMP" else f"h.{sql.q(c.name)}"
        for c in colour.csv_columns
    )
    return (f"SELECT {fields} FROM range({int(first)}, {int(first + count)}) g(j) "
            f"JOIN head h ON h.i = hash(g.j, {SEED}) % {int(head_rows)} ORDER BY g.j")


class Pool:
    """A colour's pool of resampled rows, as gzip members of `BLOCK_ROWS` rows, cached on disk."""

    def __init__(self, colour: Colour, folder: Path):
        self.colour, self.folder = colour, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect()
        self.con.execute("SET threads = 1")
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute(f"CREATE TABLE head AS SELECT row_number() OVER () - 1 AS i, * FROM {sql.read_raw_csv(colour)}",
                         {"path": str(HEADS[colour.name])})
        [(self.head_rows,)] = self.con.execute("SELECT count(*) FROM head").fetchall()

    def member(self, first: int, count: int, name: str) -> Path:
        path = self.folder / name
        if not path.exists():
            scratch = path.with_suffix(".part")
            self.con.execute(f"COPY ({_rows_sql(self.colour, first, count, self.head_rows)}) TO '{scratch}' "
                             "(HEADER false, DELIMITER ',', COMPRESSION gzip)")
            scratch.rename(path)
        return path

    def write_month(self, month: Month, dest: Path) -> Path:
        """The header, then blocks 0 .. k-1 of the pool, then rows k * BLOCK_ROWS ... of its own."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        full, rest = divmod(month.rows, BLOCK_ROWS)
        parts = [self.member(b * BLOCK_ROWS, BLOCK_ROWS, f"block_{b:04d}.gz") for b in range(full)]
        if rest:
            parts.append(self.member(full * BLOCK_ROWS, rest, f"tail_{full:04d}_{rest}.gz"))
        with open(dest, "wb") as out:
            out.write(gzip.compress((",".join(self.colour.header) + "\n").encode(), mtime=0))
            for part in parts:
                out.write(part.read_bytes())
        return dest

    def close(self) -> None:
        self.con.close()


def build_mirror(months: list[Month], mirror: Path, cache: Path) -> dict[str, Path]:
    """Every month's file under `mirror`, from the pools under `cache` (kept between runs)."""
    files = {}
    for colour in {m.colour.name: m.colour for m in months}.values():
        pool = Pool(colour, cache / colour.name)
        try:
            for month in (m for m in months if m.colour is colour):
                files[month.file_name] = pool.write_month(month, mirror / colour.name / f"{month.file_name}.gz")
        finally:
            pool.close()
    return files
