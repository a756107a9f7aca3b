"""Runs of a month: which statuses count as in flight, and the process a run records so that a run
whose process was killed can be told from one still at work.

`dagster job execute` and `dg launch` run in the CLI's own process, outside any run launcher, so
Dagster's run monitoring cannot see such a process die (and the default run launcher cannot check
a run worker's health either): a SIGKILLed run would stay STARTED for ever, and the schedules,
the sensors and `fresh-start` would wait for it. Each run records its host and process (the run
tag `taxi/process`, set by its first step); a run of this host whose process is gone is marked
FAILURE by whoever looks at it next (a schedule or sensor tick, `fresh-start`), with the reason.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

# The one list of run statuses: a run in any of these may still write.
IN_FLIGHT = frozenset({
    dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
})
PROCESS_TAG = "taxi/process"


def _start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot, Linux's /proc), which tells a pid reused
    by a new process from the one that recorded it; None where /proc has no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> str:
    """`host:pid:start`, the value of PROCESS_TAG for the calling process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or ''}"


def process_gone(recorded: str) -> bool:
    """Whether the process a run recorded is known to be gone: on this host, and no process with
    its pid and start time runs now. A process of another host is never judged from here."""
    host, _, rest = recorded.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if Path("/proc/self/stat").exists():
        now = _start_time(int(pid))
        return now is None or bool(started) and now != started
    try:  # no /proc (macOS): whether the pid runs at all
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def unfinished_runs(instance: dg.DagsterInstance, filters: dg.RunsFilter) -> list[dg.DagsterRun]:
    """The runs `filters` selects that are in flight, after marking FAILURE those whose process
    was killed (see the module's docstring)."""
    runs = instance.get_runs(filters=filters)
    alive = []
    for run in runs:
        if run.status not in IN_FLIGHT:
            continue
        recorded = run.tags.get(PROCESS_TAG)
        if run.status == dg.DagsterRunStatus.STARTED and recorded and process_gone(recorded):
            instance.report_run_failed(run, f"the run's process ({recorded}) is gone: it was killed or its "
                                            "machine restarted; the month is as its last completed step left it")
            continue
        alive.append(run)
    return alive
