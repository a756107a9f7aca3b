"""Who holds the embedded warehouse's lock, in words an operator can act on.

DuckDB lets one process at a time open a file for writing, and while it does, no other process can
open the file at all. Its error names the holder:

    IO Error: Could not set lock on file "/x/warehouse.duckdb": Conflicting lock is held in
    /usr/bin/python3.11 (PID 4704). See also https://duckdb.org/docs/current/connect/concurrency

The program path alone rarely says who that is (a notebook and a Dagster run are both `python`),
so on Linux the holder's command line is read from /proc as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_CONFLICT = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
_COMMAND_CHARS = 100
_DBT_BUILD = re.compile(r"/dbt build( |$)")
LOCK_TAKEN = "took the warehouse lock of"  # the line a step logs when its wait is over
HINT = (
    "if it is a DuckDB CLI or a notebook, close it; to read while loading, use "
    "`python -m taxi_pipeline counts` or a snapshot copy (see docs/operating.md)"
)


@dataclass(frozen=True)
class LockHolder:
    pid: int | None
    program: str | None
    command: str | None  # the holder's command line, where the OS shows it

    def describe(self) -> str:
        if self.pid is None:
            return "another process"
        shown = self.command or self.program or "unknown program"
        if len(shown) > _COMMAND_CHARS:
            shown = shown[: _COMMAND_CHARS - 3] + "..."
        return f"PID {self.pid} ({shown})"

    @property
    def is_pipeline_run(self) -> bool:
        """A Dagster run of this project, or the dbt build of its analytics step, lets go on its own
        when its step ends."""
        command = self.command or ""
        return "dagster" in command or _DBT_BUILD.search(command) is not None


def is_lock_conflict(error_text: str) -> bool:
    return "lock" in error_text.lower()


def lock_holder(error_text: str) -> LockHolder | None:
    """The process DuckDB names in a lock error; None if the error is not about the lock."""
    if not is_lock_conflict(error_text):
        return None
    found = _CONFLICT.search(error_text)
    if found is None:
        return LockHolder(None, None, None)
    pid = int(found["pid"])
    return LockHolder(pid, found["program"], _command_line(pid))


def lock_wait_message(
    path: str | Path, error_text: str, waited_s: float, *,
    timeout_s: float | None = None, gave_up: bool = False,
) -> str:
    """One log line: the file, its holder, how long this process has waited, and what to do."""
    if gave_up:
        state = f"gave up after {waited_s:.0f} s"
    else:
        state = f"waiting, {waited_s:.0f} s so far"
        if timeout_s:
            state += f" (gives up after {timeout_s:.0f} s)"
    return _message(path, error_text, state)


def locked_message(path: str | Path, error_text: str) -> str:
    """The same for a command that does not wait (an operator is at the terminal)."""
    return _message(path, error_text, None)


def holder_of(error_text: str) -> LockHolder:
    """The holder a lock error names, or "another process" when it names none."""
    return lock_holder(error_text) or LockHolder(None, None, None)


def _message(path: str | Path, error_text: str, state: str | None) -> str:
    holder = holder_of(error_text)
    if holder.is_pipeline_run:
        advice = "it is another run's warehouse step (a load or a dbt build), which lets go when it ends"
    else:
        advice = HINT
    return f"warehouse {path} is locked by {holder.describe()}{f': {state}' if state else ''}; {advice}"


def _command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # not Linux, or the holder has just exited
        return None
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return command or None
