"""What a month cost BigQuery, as a user sees it: a month loaded on the GCP target (the emulators
on 127.0.0.1), a real `dagster-webserver` on 127.0.0.1 and headless Chromium reading the asset's
events page. The screenshot lands in `test-artifacts/`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from taxi_pipeline_tests.helpers.emulators import free_port
from taxi_pipeline_tests.helpers.operate_targets import execute_job

pytestmark = pytest.mark.gcp
ROOT = Path(__file__).parents[1]
ARTIFACTS = ROOT / "test-artifacts"
COST_KEYS = ("bigquery_bytes_processed", "bigquery_bytes_billed", "bigquery_slot_ms", "bigquery_job_ids")


def test_the_ui_shows_what_a_month_cost_bigquery(gcp_env, tmp_path):  # noqa: F811
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed: apt-get install chromium (scripts/test does)"
    execute_job("green_taxi_job", "2019-01-01", gcp_env)
    port = free_port()
    log = open(tmp_path / "webserver.log", "wb")
    webserver = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(port),
         "-m", "taxi_pipeline.definitions"],
        cwd=ROOT, env=gcp_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(f"{url}/server_info", webserver, tmp_path / "webserver.log")
        # The UI's first-visit dialog would cover the page.
        urllib.request.urlopen(urllib.request.Request(
            f"{url}/graphql", data=json.dumps({"query": "mutation { setNuxSeen }"}).encode(),
            headers={"Content-Type": "application/json"}), timeout=30).read()
        page = f"{url}/assets/green_tripdata?view=events&partition=2019-01-01"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1400", "--virtual-time-budget=25000", f"--user-data-dir={tmp_path / 'profile'}"]
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "green_tripdata_bigquery_cost.png"
        subprocess.run([chromium, *flags, f"--screenshot={screenshot}", page], capture_output=True, timeout=120,
                       check=True)
        dom = subprocess.run([chromium, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120,
                             check=True).stdout
    finally:
        webserver.send_signal(signal.SIGTERM)
        try:
            webserver.wait(20)
        except subprocess.TimeoutExpired:
            webserver.kill()
        log.close()
    for key in COST_KEYS:
        assert key in dom, f"{key} is not on the asset's events page"
    assert "MERGE" not in dom  # metadata shows figures and job ids, not statements


def _wait_for(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the webserver did not answer {url}:\n{log.read_text()[-3000:]}")
