"""Which source serves a month: one function, `SourceChoice.for_month`, decides.

`TAXI_SOURCE`:
- `auto` (default): the release for its months (2019-01..2021-07: the course's files and counts),
  the TLC for every later month;
- `release`: the release only; a later month fails at once with the reason, before any request;
- `tlc`: the TLC for every month (its 2019-2020 files were reprocessed in 2022 and hold other rows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from taxi_pipeline.lib.colours import Colour
from taxi_pipeline.lib.sources.base import NoSourceError, Source, SourceFile
from taxi_pipeline.lib.sources.release import FIRST_MONTH, LAST_MONTH, ReleaseSource
from taxi_pipeline.lib.sources.tlc import TlcSource

MODES = ("auto", "release", "tlc")


@dataclass(frozen=True)
class SourceChoice:
    mode: str
    release: ReleaseSource
    tlc: TlcSource

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"TAXI_SOURCE={self.mode!r} is not a known source; use one of {', '.join(MODES)}")

    def for_month(self, month: dt.date) -> Source:
        if self.mode == "tlc" or (self.mode == "auto" and not self.release.has(month)):
            return self.tlc
        if self.release.has(month):
            return self.release
        raise NoSourceError(
            f"{month:%Y-%m}: TAXI_SOURCE=release serves only {FIRST_MONTH:%Y-%m}..{LAST_MONTH:%Y-%m} "
            "(the course's release ends there); set TAXI_SOURCE=auto (the default) or tlc to load "
            "later months from the TLC"
        )

    def can_serve(self, month: dt.date) -> bool:
        return self.mode != "release" or self.release.has(month)

    def locate(self, colour: Colour, month: dt.date) -> SourceFile:
        return self.for_month(month).locate(colour, month)

