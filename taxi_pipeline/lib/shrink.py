"""The guard on shrinking months: a file that would empty a loaded month, or take away most of it,
is refused rather than loaded.

A month of taxi trips with no rows is never a real publication, and a month that suddenly loses
a large share of its rows is far more likely a broken export than a correction: the corrections
seen so far move a month by a few percent (the TLC's reprocessed green 2019-01 holds 672,105 rows,
the release's 630,918: 6.5%). So a file that removes more than `MAX_SHRINK` of a loaded month's
rows, or leaves it empty, is refused with both counts; the run tag `accept_shrink=true` loads it
on purpose.
"""

from __future__ import annotations

from taxi_pipeline.lib.sources.base import InvalidFileError

# Four times the largest real correction we know of (6.5%), well below a gutted export.
MAX_SHRINK = 0.25
ACCEPT_TAG = "accept_shrink"


class ShrinkingMonthError(InvalidFileError):
    """The file would empty a loaded month, or remove more than MAX_SHRINK of its rows."""


def check_shrink(file_name: str, rows: int, loaded_rows: int | None, loaded_from: str, partition_key: str) -> None:
    """Raises ShrinkingMonthError if `rows` (the new file's) would replace `loaded_rows` (the
    month as loaded from `loaded_from`; None: nothing loaded) by too few."""
    if rows > 0 and (not loaded_rows or rows >= loaded_rows * (1 - MAX_SHRINK)):
        return
    if rows == 0 and not loaded_rows:
        what = "the file has no rows, and a month of trips is never empty"
    elif rows == 0:
        what = f"the file has no rows and would empty the month ({loaded_rows:,} rows loaded from {loaded_from})"
    else:
        what = (f"the file has {rows:,} rows and would remove {1 - rows / loaded_rows:.0%} of the month "
                f"({loaded_rows:,} rows loaded from {loaded_from}; a correction moves a month by a few percent)")
    raise ShrinkingMonthError(file_name, (
        f"{what}. The month is kept as it is and the file under rejected/. To load it on purpose, run the "
        f'month again with the tag {ACCEPT_TAG}=true (--tags \'{{"dagster/partition": "{partition_key}", '
        f'"{ACCEPT_TAG}": "true"}}\')'
    ))
