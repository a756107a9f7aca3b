"""A loopback HTTP server over a folder, with switchable faults, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

# A fault takes the request handler and the file's bytes and answers instead of the server;
# returning False lets the normal answer through. GETs and HEADs take them in turn.
Fault = Callable[[http.server.BaseHTTPRequestHandler, Path], bool]


class MirrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        self.root = root
        self.faults: list[Fault] = []  # consumed in order, one per request
        self.requests: list[str] = []  # GETs
        self.heads: list[str] = []  # HEADs (the sensors' and schedules' probes)
        super().__init__(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: MirrorServer

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.server.faults:
            fault = self.server.faults.pop(0)
            if fault(self, Path(self.translate_path(self.path))):
                return
        super().do_GET()

    def do_HEAD(self) -> None:
        self.server.heads.append(self.path)
        if self.server.faults:
            fault = self.server.faults.pop(0)
            if fault(self, Path(self.translate_path(self.path))):
                return
        super().do_HEAD()

    def log_message(self, *args) -> None:  # keep test output quiet
        pass


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[MirrorServer]:
    """Serves `root` on 127.0.0.1 (a free port) until the block ends."""
    server = MirrorServer(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def wait_for_webserver(url: str, log: Path, proc: subprocess.Popen | None = None, timeout_s: float = 180) -> None:
    """Returns once the Dagster webserver at `url` answers; fails with the end of its log if it
    does not in time (or its process ended)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
                raise RuntimeError(f"no webserver at {url}:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.5)


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole group a server was started in (server, code servers), then SIGKILL
    what is left: the code that started a server stops it, by process id, even on failure."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their parent
        return
