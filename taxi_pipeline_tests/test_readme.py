"""The README's "Running it" commands, taken from README.md itself and run as written, so that the
docs and the tests cannot drift: in a copy of the repository (the commands write `./storage` and
`.taxi`), with the project's venv, on the bundled mirrors, under each server the README names
(`dg dev` and `dagster dev -w workspace.yaml`). Every command must exit 0 and every run it starts
must end SUCCESS with the months' exact counts. Servers are stopped by process group.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from taxi_pipeline_tests.helpers.servers import stop_process_group, wait_for_webserver
from taxi_pipeline_tests.helpers.support import query

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]
VENV = Path(sys.executable).parents[1]
README = ROOT / "README.md"
ARTIFACTS = ROOT / "test-artifacts"
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
# The bundled files' rows (taxi_pipeline_tests/data/README.md).
ROWS = {"green_tripdata_2020-10.csv": 95_120, "yellow_tripdata_2020-01.csv": 999,
        "green_tripdata_2019-01.csv": 99, "green_tripdata_2019-10.csv": 1_308}


def readme_blocks(section: str) -> list[list[str]]:
    """The bash blocks of a `## section` of README.md, each as its command lines (no blank lines;
    a line that is only a comment is kept only if it shows a command, `# or: ...`)."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    return [[line for line in block.splitlines() if line.strip() and (not line.startswith("#") or line.startswith("# or: "))]
            for block in blocks]


def _repository_copy(dest: Path) -> Path:
    """The files git tracks (and the work tree's changes), as a fresh clone would have them, with
    the venvs the quick start makes (the project's, and dbt's: `scripts/setup`): the README's
    commands run from the repository's root."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / ".venv").symlink_to(VENV)
    (dest / ".venv-dbt").symlink_to(ROOT / ".venv-dbt")
    return dest


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _screenshot(url: str, path: Path, profile: Path) -> None:
    """Headless Chromium's picture of a page, checked to be a real page (many colours)."""
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed: apt-get install chromium (scripts/test does)"
    urllib.request.urlopen(urllib.request.Request(  # the UI's first-visit dialog would cover the page
        url.split("/locations")[0] + "/graphql", data=b'{"query": "mutation { setNuxSeen }"}',
        headers={"Content-Type": "application/json"}), timeout=30).read()
    path.parent.mkdir(exist_ok=True)
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1400,900", "--virtual-time-budget=20000", f"--user-data-dir={profile}",
                    f"--screenshot={path}", url], capture_output=True, timeout=120, check=True)
    with Image.open(path) as image:
        assert image.size == (1400, 900) and len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def _bash(lines: list[str], cwd: Path, env: dict[str, str], exports: list[str]) -> subprocess.CompletedProcess:
    script = "set -euo pipefail\n" + "\n".join(exports + lines)
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


SERVERS = [line.removeprefix("# or: ") for line in readme_blocks("Running it")[1]]


def test_the_readme_names_both_servers_and_shows_dg_launch():
    assert [s.split()[0] for s in SERVERS] == [".venv/bin/dg", ".venv/bin/dagster"], SERVERS
    assert any("dg launch" in line for line in readme_blocks("Running it")[0])


def _built_after(instance, runs) -> bool:
    """An analytics build started after the last load ended, and it ended."""
    builds = [r for r in runs if r.job_name == "analytics_job"]
    loads = [r for r in runs if r.job_name != "analytics_job"]
    if not builds or not loads:
        return False
    records = {r.dagster_run.run_id: r for r in instance.get_run_records()}
    last_load = max(records[r.run_id].end_time or 0 for r in loads)
    return any((records[r.run_id].start_time or 0) >= last_load and r.status in TERMINAL for r in builds)


@pytest.mark.parametrize("server", SERVERS, ids=["dg dev", "dagster dev"])
def test_the_readme_commands_run_as_written(server, tmp_path):
    repo = _repository_copy(tmp_path / "repo")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    first, _, queued = readme_blocks("Running it")[:3]
    exports = [line.split("#")[0] for line in first if line.startswith("export ")]
    started = time.monotonic()
    done = _bash(first, repo, env, [])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "green_tripdata_2020-10.csv" in done.stdout and "95,120 rows" in done.stdout, done.stdout
    timings = [f"block 1 {time.monotonic() - started:.1f} s"]

    port = 3000 if _port_free(3000) else _free_port()  # as written, unless something else holds 3000
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    server_proc = subprocess.Popen(["bash", "-c", "\n".join([*exports, "exec " + server.replace("3000", str(port))])],
                                   cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_webserver(f"http://127.0.0.1:{port}", tmp_path / "server.log", server_proc)
        started = time.monotonic()
        done = _bash(queued, repo, env, exports)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        with DagsterInstance.from_config(str(repo)) as instance:
            deadline = time.monotonic() + 300
            # The four months; under `dg dev` also the analytics models, built by their sensor after
            # them (its 30 s interval: waited for once).
            marts = server.startswith(".venv/bin/dg")
            while True:
                runs = instance.get_runs()
                loads = [r for r in runs if r.job_name != "analytics_job"]
                if len(loads) >= 4 and all(r.status in TERMINAL for r in runs) and (
                        not marts or _built_after(instance, runs)):
                    break
                assert time.monotonic() < deadline, [(r.job_name, r.tags.get("dagster/partition"), r.status) for r in runs]
                time.sleep(1)
            failed = {r.run_id: r.status for r in runs if r.status != DagsterRunStatus.SUCCESS}
            assert not failed, (failed, (tmp_path / "server.log").read_text()[-5000:])
            assert len(loads) == 4
            backfills = instance.get_backfills()
            assert [b.status.value for b in backfills] in (["COMPLETED"], ["COMPLETED_SUCCESS"]), backfills
        timings.append(f"queued block {time.monotonic() - started:.1f} s")
        if server.startswith(".venv/bin/dg"):  # the README's pictures of the asset graph
            _screenshot(f"http://127.0.0.1:{port}/locations/taxi_pipeline/asset-groups/green",
                        ARTIFACTS / "asset_graph_green.png", tmp_path / "chromium")
            _screenshot(f"http://127.0.0.1:{port}/locations/taxi_pipeline/asset-groups/analytics",
                        ARTIFACTS / "asset_graph_analytics.png", tmp_path / "chromium")
    finally:
        stop_process_group(server_proc)
        log.close()
    loaded = dict(query(repo / ".taxi", "SELECT filename, count(*) FROM zoomcamp.green_tripdata GROUP BY 1"))
    loaded.update(query(repo / ".taxi", "SELECT filename, count(*) FROM zoomcamp.yellow_tripdata GROUP BY 1"))
    assert loaded == ROWS, loaded
    if server.startswith(".venv/bin/dg"):  # the marts follow the months: every loaded row in the fact, once
        fact = dict(query(repo / ".taxi", "SELECT filename, count(*) FROM zoomcamp.fct_trips GROUP BY 1"))
        assert fact == ROWS, fact
    print(f"\n{server.split()[0]}: " + ", ".join(timings))
