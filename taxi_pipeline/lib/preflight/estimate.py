"""What a backfill will cost on BigQuery on-demand pricing, before it runs.

Row counts: the course's release for 2019-2020 (exact yearly totals, spread evenly over the
months of the year); other months at the 2020 monthly average, marked as a guess. Bytes a row:
the main table's own (from the live table when it holds rows, else this project's measured
62.5 bytes a yellow row: benchmarks/README.md). Per month the jobs process about: the CREATE TABLE
AS reads the loaded month (all columns, ~1.3x the typed row), and the MERGE reads the staged
rows, the month's ids and writes the month (~2x). Load jobs are free
(https://cloud.google.com/bigquery/pricing#data_ingestion_pricing).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# The release's exact yearly rows (DataTalksClub nyc-tlc-data, counted by the course's flow).
YEARLY_ROWS = {
    ("yellow", 2019): 84_399_019, ("yellow", 2020): 24_648_499,
    ("green", 2019): 6_044_050, ("green", 2020): 1_734_051,
}
BYTES_PER_ROW = 62.5  # the main table's bytes a row of a yellow month, ids included (measured)
PROCESSED_PER_STORED_BYTE = 1.3 + 2.0  # staging's read + the merge's reads (see the module docstring)
# On-demand query pricing, US multi-region: https://cloud.google.com/bigquery/pricing#on_demand_pricing
USD_PER_TIB = 6.25
# Active logical storage, US multi-region: https://cloud.google.com/bigquery/pricing#storage
USD_PER_GIB_MONTH = 0.02


@dataclass(frozen=True)
class Estimate:
    months: int
    rows: int
    guessed_months: int
    bytes_stored: int
    bytes_processed: int

    @property
    def query_usd(self) -> float:
        return self.bytes_processed / 2**40 * USD_PER_TIB

    @property
    def storage_usd_month(self) -> float:
        return self.bytes_stored / 2**30 * USD_PER_GIB_MONTH

    def describe(self, colours: list[str], first: dt.date, last: dt.date) -> str:
        guess = f" ({self.guessed_months} months outside 2019-2020 at 2020's monthly average)" if self.guessed_months else ""
        return (f"{', '.join(colours)} {first:%Y-%m}..{last:%Y-%m}: {self.months} months, ~{self.rows:,} rows{guess}; "
                f"~{self.bytes_processed / 2**30:,.1f} GiB processed, ~${self.query_usd:,.2f} on-demand "
                f"(before the free 1 TiB a month); ~{self.bytes_stored / 2**30:,.1f} GiB stored, "
                f"~${self.storage_usd_month:,.2f} a month")


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


def estimate(colours: list[str], first: dt.date, last: dt.date, bytes_per_row: float = BYTES_PER_ROW) -> Estimate:
    rows, guessed, months = 0, 0, months_between(first, last)
    for colour in colours:
        for month in months:
            known = YEARLY_ROWS.get((colour, month.year))
            if known is None:
                guessed += 1
                known = YEARLY_ROWS[(colour, 2020)]
            rows += known // 12
    stored = int(rows * bytes_per_row)
    return Estimate(len(months) * len(colours), rows, guessed, stored, int(stored * PROCESSED_PER_STORED_BYTE))
