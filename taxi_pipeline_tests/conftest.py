"""Fixtures: a loopback HTTP mirror of the real files in `data/mirror`, and a fresh TAXI_HOME."""

from __future__ import annotations

import os

import pytest

from taxi_pipeline_tests.servers import MirrorServer, serve_folder
from taxi_pipeline_tests.support import MIRROR, forget_closed_dagster_instances, make_resources


@pytest.fixture(autouse=True)
def _forget_closed_dagster_instances():
    """See `support.forget_closed_dagster_instances`: `build_schedule_context(instance=...)` and
    `build_sensor_context` leave the test instance current after `instance_for_test()` closed it."""
    yield
    forget_closed_dagster_instances()


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
