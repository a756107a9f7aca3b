"""One partition = one source file = one month, from the release's first month on."""

from __future__ import annotations

import datetime as dt
import re

import dagster as dg

FIRST_MONTH = "2019-01-01"
_MONTH_KEY = re.compile(r"\d{4}-\d{2}-01")

# No end date: past an end date a schedule would re-target the last partition forever, and the
# newest partition is always the month that just ended (what the monthly tick should load).
MONTHLY_PARTITIONS = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, timezone="UTC")


class NotAMonthError(dg.Failure):
    """A partition key that names no month of the partitions (a typo, a month before the first
    or one that has not ended). Dagster itself would take `2020-04-15` for the window after it."""


def last_month(now: dt.datetime | None = None) -> dt.date:
    """The newest partition: the month that ended last before `now` (UTC)."""
    today = (now or dt.datetime.now(dt.timezone.utc)).date()
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def check_month_key(partition_key: str, now: dt.datetime | None = None) -> dt.date:
    """The month `partition_key` names, if it is one of the partitions at `now` (default: now);
    else NotAMonthError, before anything is asked of the source or written."""
    first, last = dt.date.fromisoformat(FIRST_MONTH), last_month(now)
    try:
        month = dt.date.fromisoformat(partition_key) if _MONTH_KEY.fullmatch(partition_key) else None
    except ValueError:  # 2020-13-01
        month = None
    if month is not None and first <= month <= last:
        return month
    message = (
        f"partition key {partition_key!r} is not a month: use YYYY-MM-01, the first day of a month "
        f"from {first} to {last} (the month that just ended); nothing was downloaded or written"
    )
    raise NotAMonthError(description=message, allow_retries=False)


def partition_month(context: dg.AssetExecutionContext) -> dt.date:
    """The first day of the month this run loads; the key is checked first (`check_month_key`)."""
    return check_month_key(context.partition_key)
