"""Runs a command and measures it: wall time, CPU time, peak RSS of its whole process tree, disk
high-water. CPU time (user + system of the command and every process it waited for) is what a
shared machine cannot inflate much; wall time is what a user waits."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    disk_high_water_mb: float
    output: str


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        children = proc.children(recursive=True)
    except psutil.Error:  # a child exited while psutil walked the tree: count what is left
        children = []
    for p in [proc, *children]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _disk_usage(paths: list[Path]) -> int:
    total = 0
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
    return total


def measure(command: list[str], env: dict[str, str], watch: list[Path], cwd: Path | None = None) -> Measurement:
    """`watch`: folders whose growth counts as the command's disk use (baseline subtracted)."""
    baseline = _disk_usage(watch)
    peak = {"rss": 0, "disk": 0}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    done = threading.Event()

    def poll() -> None:
        tick = 0
        while not done.is_set():
            peak["rss"] = max(peak["rss"], _tree_rss(ps))
            if tick % 5 == 0:
                peak["disk"] = max(peak["disk"], _disk_usage(watch) - baseline)
            tick += 1
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    output = proc.communicate()[0]
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    done.set()
    poller.join()
    peak["disk"] = max(peak["disk"], _disk_usage(watch) - baseline)
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({proc.returncode}):\n{output[-4000:]}")
    return Measurement(round(wall, 2), round(cpu, 2), round(peak["rss"] / 2**20, 1), round(peak["disk"] / 2**20, 1), output)
