"""Fixtures: a loopback HTTP mirror of the real files in `data/mirror`, and a fresh TAXI_HOME."""

from __future__ import annotations

import os

import pytest

from taxi_pipeline_tests.servers import MirrorServer, serve_folder
from taxi_pipeline_tests.support import MIRROR, make_resources


@pytest.fixture(autouse=True)
def _forget_closed_dagster_instances():
    """`build_schedule_context(instance=...)` / `build_sensor_context` enter the test instance and
    leave it as the current defs-state storage after `instance_for_test()` has closed it; the next
    `dg.materialize` of any test then fails with "Attempted to resolve undefined DagsterInstance
    weakref" (Dagster 1.13.27). Clearing the context variable after each test keeps tests
    independent of their order."""
    yield
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)


@pytest.fixture(scope="session")
def http_mirror() -> MirrorServer:
    with serve_folder(MIRROR) as server:
        yield server


@pytest.fixture
def taxi_home(tmp_path):
    return tmp_path / "taxi_home"


@pytest.fixture
def resources(taxi_home, http_mirror):
    return make_resources(taxi_home, http_mirror.url)


@pytest.fixture(scope="session")
def gcp_emulators(tmp_path_factory):
    """fake-gcs-server + local-bigquery, started once for the session's GCP tests.

    Sets STORAGE_EMULATOR_HOST for the session (the storage client reads it), and yields the
    environment a `dagster` subprocess needs to reach both."""
    import time

    from taxi_pipeline_tests.emulators import PROJECT, fake_gcs_server, local_bigquery

    workdir = tmp_path_factory.mktemp("emulators")
    started = time.monotonic()
    with fake_gcs_server(workdir) as gcs_url, local_bigquery(workdir, gcs_url) as bq_url:
        env = {"STORAGE_EMULATOR_HOST": gcs_url, "BIGQUERY_EMULATOR_HOST": bq_url, "GCP_PROJECT_ID": PROJECT}
        previous = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        print(f"\nemulators up in {time.monotonic() - started:.1f} s")
        try:
            yield env
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def bq(gcp_emulators):
    """The real BigQuery client, against the emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from taxi_pipeline_tests.emulators import PROJECT

    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": gcp_emulators["BIGQUERY_EMULATOR_HOST"]})
    yield client
    client.close()
