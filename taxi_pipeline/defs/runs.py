"""Runs of a month: which statuses count as in flight, and the process a run records so that a run
whose process was killed can be told from one still at work.

`dagster job execute` and `dg launch` run in the CLI's own process, outside any run launcher, so
Dagster's run monitoring cannot see such a process die (and the default run launcher cannot check
a run worker's health either): a SIGKILLed run would stay STARTED for ever, and the schedules,
the sensors and `fresh-start` would wait for it. Each run records its host and process (the run
tag `taxi/process`, set by its first step); a run of this host and PID namespace (not another
container's) whose process is gone is marked FAILURE by whoever looks at it next (a schedule or sensor tick, `fresh-start`), with the reason.
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


def _pid_namespace() -> str:
    """The process's PID namespace (Linux): containers on one host, even with the host's network and
    name, each have their own, in which another container's pid means nothing."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return ""


def this_process() -> str:
    """`host/pid-namespace:pid:start`, the value of PROCESS_TAG for the calling process."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{_pid_namespace()}:{pid}:{_start_time(pid) or ''}"


def process_gone(recorded: str) -> bool:
    """Whether the process a run recorded is known to be gone: on this host and in this PID
    namespace, no process with its pid and start time runs now. A process of another host or
    container is never judged from here (its run's own launcher and monitoring see to it)."""
    place, _, rest = recorded.partition(":")
    pid, _, started = rest.partition(":")
    if place != f"{socket.gethostname()}/{_pid_namespace()}" or not pid.isdigit():
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
    return [run for run in instance.get_runs(filters=filters) if run.status in IN_FLIGHT and not _reaped(instance, run)]


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Marks FAILURE every started run of this host and container whose process is gone, and frees the pool slots
    it held (a killed run's `warehouse` slot would hold every later merge back); returns their ids.
    Each run does this first, so a run killed without a daemon to notice never blocks the next."""
    started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    return [run.run_id for run in started if _reaped(instance, run)]


def _reaped(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    recorded = run.tags.get(PROCESS_TAG)
    if run.status != dg.DagsterRunStatus.STARTED or not recorded or not process_gone(recorded):
        return False
    instance.report_run_failed(run, f"the run's process ({recorded}) is gone: it was killed or its machine "
                                    "restarted; the month is as its last completed step left it")
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return True
