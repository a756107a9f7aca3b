"""One partition = one source file = one month, from the release's first month on."""

from __future__ import annotations

import datetime as dt

import dagster as dg

FIRST_MONTH = "2019-01-01"

# No end date: past an end date a schedule would re-target the last partition forever, and the
# newest partition is always the month that just ended (what the monthly tick should load).
MONTHLY_PARTITIONS = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, timezone="UTC")


def partition_month(context: dg.AssetExecutionContext) -> dt.date:
    """The first day of the month this run loads, from the partition's time window."""
    return context.partition_time_window.start.date()


def month_of_key(partition_key: str) -> dt.date:
    return MONTHLY_PARTITIONS.time_window_for_partition_key(partition_key).start.date()
