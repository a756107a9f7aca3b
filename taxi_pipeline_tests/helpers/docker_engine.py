"""A real Docker engine for the `deploy` tests: Debian's dockerd, started here and stopped by its
process id, and the images the shipped deploy files need, cached between test runs.

The daemon keeps its images in its own data root under a cache folder that outlives the tests
(`/var/cache/taxi-docker` as root, else `~/.cache/taxi-docker`; `TAXI_DOCKER_CACHE` overrides), so
the base images are built once per machine and the shipped image's dependency layer once per
pyproject. It starts with `--bridge=none --iptables=false --ip-forward=false`: no bridge, no
iptables rule, no sysctl change on the host; only host-network builds and containers have a
network, which is what the tests use (every server on 127.0.0.1).

Base images (`scripts/docker-setup images`) are Debian's packages under the tags the shipped files
name. This machine reaches PyPI through a TLS-inspecting proxy whose CA certificates the host trusts
in its local CA folder; pip inside `docker build` needs them, so a layer adding them is put on the
Python base image here, for the tests only. The shipped Dockerfile never sees them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
# Debian's client: it builds with BuildKit (which reads deploy/Dockerfile.dockerignore); a newer
# client first on PATH steps down to the 20.10 API and has no buildx, so only the legacy builder.
DOCKER = "/usr/bin/docker"
HOST_CA = Path("/usr/local/share/ca-certificates")
PYTHON_BASE = "python:3.11-slim-bookworm"
CA_LABEL = "taxi.test.host-ca-sha256"


def cache_dir() -> Path:
    default = Path("/var/cache/taxi-docker") if os.geteuid() == 0 else Path.home() / ".cache" / "taxi-docker"
    return Path(os.environ.get("TAXI_DOCKER_CACHE", default))


@dataclass
class Engine:
    socket: Path
    pid: int
    log: Path
    timings: dict[str, float]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "1"}

    @property
    def socket_gid(self) -> int:
        return self.socket.stat().st_gid

    def docker(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        done = subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return done.stdout

    def has_image(self, tag: str) -> bool:
        return subprocess.run([DOCKER, "image", "inspect", tag], env=self.env, capture_output=True,
                              check=False).returncode == 0

    def image_size_mb(self, tag: str) -> int:
        return int(self.docker("image", "inspect", "-f", "{{.Size}}", tag)) // 1_000_000

    def build(self, tag: str, dockerfile: Path, context: Path) -> float:
        started = time.monotonic()
        # Host network: the build's apt and pip reach the registries the host reaches, through its proxy.
        self.docker("build", "--network", "host", "-q", "-f", str(dockerfile), "-t", tag, str(context), timeout=1800)
        return time.monotonic() - started


def _setup(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "docker-setup"), *args], env=env, check=True)


@contextlib.contextmanager
def docker_engine() -> Iterator[Engine]:
    """dockerd with its own data root (kept) and exec root (per start), until the block ends."""
    started = time.monotonic()
    if not shutil.which("dockerd") or not Path(DOCKER).exists() or not shutil.which("docker-compose"):
        _setup("install")
    timings = {"install": time.monotonic() - started}
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    # The exec root holds containerd's state and the socket: short paths (sockets are limited to
    # 108 bytes), fresh for each daemon.
    run_dir = Path(tempfile.mkdtemp(prefix="taxi-docker-", dir="/run" if os.access("/run", os.W_OK) else None))
    socket, log = run_dir / "docker.sock", cache / "dockerd.log"
    args = ["dockerd", "--host", f"unix://{socket}", "--data-root", str(cache / "data"),
            "--exec-root", str(run_dir / "exec"), "--pidfile", str(run_dir / "dockerd.pid"),
            "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine(socket, proc.pid, log, timings)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([DOCKER, "version"], env=engine.env, capture_output=True, check=False).returncode:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        timings["dockerd"] = time.monotonic() - started - timings["install"]
        yield engine
    finally:
        _stop(proc)
        _unmount_under(run_dir)  # the network namespace dockerd binds there outlives it
        shutil.rmtree(run_dir, ignore_errors=True)


def _unmount_under(folder: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{folder}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM: dockerd stops its containers and containerd, then exits; SIGKILL if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def prepare_base_images(engine: Engine) -> None:
    """The base images (once per machine), then the host's CA layer on the Python one."""
    started = time.monotonic()
    _setup("images", env=engine.env)
    engine.timings["base_images"] = time.monotonic() - started
    certs = sorted(HOST_CA.rglob("*.crt"))
    if not certs:
        return
    digest = hashlib.sha256(b"".join(cert.read_bytes() for cert in certs)).hexdigest()
    labels = engine.docker("image", "inspect", "-f", "{{json .Config.Labels}}", PYTHON_BASE)
    if digest in labels:
        return
    with tempfile.TemporaryDirectory() as context:
        for i, cert in enumerate(certs):
            shutil.copy(cert, Path(context) / f"host-ca-{i}.crt")
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        (Path(context) / "Dockerfile").write_text(
            f"FROM {PYTHON_BASE}\nCOPY host-ca-*.crt /usr/local/share/ca-certificates/\n"
            "RUN update-ca-certificates\n"
            f"ENV PIP_CERT={bundle} SSL_CERT_FILE={bundle} REQUESTS_CA_BUNDLE={bundle}\n"
            f"LABEL {CA_LABEL}={digest}\n")
        engine.timings["host_ca_layer"] = engine.build(PYTHON_BASE, Path(context) / "Dockerfile", Path(context))
