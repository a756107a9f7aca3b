"""A Dagster webserver + daemon on the project's `dagster.yaml`, on loopback, with the memory of
the whole process tree sampled while it runs (the daemon's code server, and every run worker)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from taxi_pipeline_tests.helpers.graphql import graphql
from taxi_pipeline_tests.helpers.servers import stop_process_group, wait_for_webserver

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


RUN_WORKER = "run workers"


def _role(command: list[str]) -> str:
    """A process of the stack by what it runs: run workers (the code server starts each run in a
    `spawn` child process), the webserver, the daemon, code servers (`dagster api grpc`), or
    other (their helpers)."""
    text = " ".join(command)
    if "--multiprocessing-fork" in text:
        return RUN_WORKER
    for name, role in (("dagster-webserver", "webserver"), ("dagster-daemon", "daemon"), ("api grpc", "code servers")):
        if name in text:
            return role
    return "other"


@dataclass
class TreeMemory:
    """Peak RSS of the tree, and of each run worker (with its children), sampled every 0.2 s; and
    the CPU time of every process seen (its last sample: a process that ends between two samples
    loses at most 0.2 s of it)."""

    roots: list[int]
    peak_mb: float = 0.0
    run_peaks_mb: dict[int, float] = field(default_factory=dict)
    cpu_s: dict[int, float] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)  # what each process is, for the CPU's split
    _done: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        procs = []
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                procs += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        rss, workers = {}, []
        for p in procs:
            try:
                rss[p.pid] = p.memory_info().rss
                times = p.cpu_times()
                self.cpu_s[p.pid] = times.user + times.system
                if p.pid not in self.roles:
                    self.roles[p.pid] = _role(p.cmdline())
                if self.roles[p.pid] == RUN_WORKER:
                    workers.append(p)
            except psutil.Error:
                continue
        self.peak_mb = max(self.peak_mb, sum(rss.values()) / 2**20)
        for worker in workers:
            try:
                tree = [worker.pid, *(c.pid for c in worker.children(recursive=True))]
            except psutil.Error:
                continue
            mb = sum(rss.get(pid, 0) for pid in tree) / 2**20
            self.run_peaks_mb[worker.pid] = max(self.run_peaks_mb.get(worker.pid, 0.0), mb)

    def cpu_by_role(self) -> dict[str, float]:
        split: dict[str, float] = {}
        for pid, seconds in self.cpu_s.items():
            role = self.roles.get(pid, "other")
            split[role] = round(split.get(role, 0.0) + seconds, 1)
        return dict(sorted(split.items()))

    def watch(self) -> threading.Thread:
        def loop() -> None:
            while not self._done.is_set():
                self._sample()
                time.sleep(0.2)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._done.set()


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    memory: TreeMemory

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.url, query, variables)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dagster_stack(work: Path, env: dict[str, str], instance_yaml: Path = ROOT / "dagster.yaml") -> Iterator[Stack]:
    """`dagster-webserver` and `dagster-daemon run` over `workspace.yaml`, in a fresh DAGSTER_HOME
    with the project's `dagster.yaml` (its storage made first, as a user's exists); stopped by
    process group when the block ends. Logs go to `work/{webserver,daemon}.log`."""
    dagster_home = work / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(instance_yaml, dagster_home / "dagster.yaml")
    env = {**env, "DAGSTER_HOME": str(dagster_home)}
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True)
    port = _free_port()
    with contextlib.ExitStack() as stack:
        logs = {name: stack.enter_context(open(work / f"{name}.log", "wb")) for name in ("webserver", "daemon")}
        commands = {
            "webserver": [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        }
        procs = []
        for name, command in commands.items():
            procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT,
                                          start_new_session=True))
            stack.callback(stop_process_group, procs[-1])
        memory = TreeMemory([p.pid for p in procs])
        watcher = memory.watch()
        stack.callback(watcher.join)
        stack.callback(memory.stop)
        url = f"http://127.0.0.1:{port}"
        wait_for_webserver(url, work / "webserver.log")
        yield Stack(url, env, memory)


def wait_for_daemon(stack: Stack, timeout_s: float = 180) -> None:
    """Until every daemon the instance runs has sent a heartbeat (the backfill and run queue ones
    among them), so the launch is timed against a running daemon, as a user's is."""
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = stack.graphql(query)["instance"]["daemonHealth"]["allDaemonStatuses"]
        if all(s["healthy"] for s in statuses if s["required"]):
            return
        time.sleep(1)
    raise RuntimeError(f"the daemon is not healthy after {timeout_s} s: {statuses}")


def environment(**values: str) -> dict[str, str]:
    return {**os.environ, **values}
