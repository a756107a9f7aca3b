"""Which months a dbt build replaces, and how.

The bundled models are incremental by month: told the months merged since their last build, they
replace exactly those, in any order. A user's project may be incremental on "newer than what the
table holds" (the course's `fct_trips`), which never picks up a month older than its newest row:
when such a month is among the merged ones, its incremental models are rebuilt whole instead.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class BuildPlan:
    months: tuple[dt.date, ...]
    full_refresh: bool
    reason: str

    def dbt_args(self) -> list[str]:
        months = json.dumps({"months": [m.isoformat() for m in self.months]})
        return ["build", "--vars", months, *(["--full-refresh"] if self.full_refresh else [])]


def plan_build(changed: set[dt.date], newest_loaded: dt.date | None, *, built_before: bool,
               months_aware: bool) -> BuildPlan:
    """`changed`: the months merged since the models' last build; `built_before`: whether every
    model to build was built by the pipeline before (else no one knows what they hold);
    `months_aware`: whether the project replaces the months it is given (the bundled one)."""
    months = tuple(sorted(changed))
    shown = ", ".join(f"{m:%Y-%m}" for m in months) or "none"
    if not built_before:
        return BuildPlan(months, True, "a first build (or models the pipeline has not built before): every month, "
                                       "incremental models rebuilt whole")
    if months_aware:
        return BuildPlan(months, False, f"the months merged since the last build, replaced in the models: {shown}")
    older = [m for m in months if newest_loaded and m < newest_loaded]
    if older:
        return BuildPlan(months, True, (
            f"month {older[0]:%Y-%m} is older than the newest loaded month ({newest_loaded:%Y-%m}): an incremental "
            "model that adds only rows newer than it holds would skip it, so incremental models are rebuilt whole"))
    return BuildPlan(months, False, f"months merged since the last build: {shown} (none older than the newest)")
