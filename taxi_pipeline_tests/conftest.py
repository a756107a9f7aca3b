"""Fixtures: a loopback HTTP mirror of the real files in `data/mirror`, and a fresh TAXI_HOME."""

from __future__ import annotations

import os

import pytest

from taxi_pipeline_tests.helpers.operate_targets import gcp_environment
from taxi_pipeline_tests.helpers.servers import MirrorServer, serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, forget_closed_dagster_instances, make_resources


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
def _gcp_stack(tmp_path_factory):
    import time

    from taxi_pipeline_tests.helpers.emulators import gcp_stack

    workdir = tmp_path_factory.mktemp("emulators")
    started = time.monotonic()
    with gcp_stack(workdir) as (env, bq_proxy, gcs_proxy):
        previous = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        print(f"\nemulators up in {time.monotonic() - started:.1f} s; requests logged in {workdir}")
        try:
            yield env, bq_proxy, gcs_proxy
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="session")
def gcp_emulators(_gcp_stack):
    """fake-gcs-server + local-bigquery, started once for the session's GCP tests, each behind a
    recording proxy (`bq_proxy.py`).

    Sets STORAGE_EMULATOR_HOST for the session (the storage client reads it), and yields the
    environment a `dagster` subprocess needs to reach both (through the proxies)."""
    return _gcp_stack[0]


@pytest.fixture
def gcp_env(gcp_emulators, tmp_path) -> dict[str, str]:
    """The environment of a `dagster` or CLI subprocess on the GCP target, with a bucket and a
    dataset of its own."""
    return gcp_environment(tmp_path, gcp_emulators)


@pytest.fixture(scope="session")
def bq_proxy(_gcp_stack):
    """The proxy in front of local-bigquery: `.requests`, `.fail_next`, `.rewrite_next`."""
    return _gcp_stack[1]


@pytest.fixture(scope="session")
def gcs_proxy(_gcp_stack):
    """The proxy in front of fake-gcs-server: `.requests`, `.fail_next`, `.rewrite_next`."""
    return _gcp_stack[2]


@pytest.fixture(autouse=True)
def _bigquery_rules(request):
    """After every test that uses the emulators: the requests it sent (the pipeline's, not the
    test's own `bq` client's) held against BigQuery's documented rules (`bigquery_rules.py`)."""
    if "gcp_emulators" not in request.fixturenames:
        yield
        return
    from taxi_pipeline_tests.helpers.bigquery_rules import check_requests

    _, bq_proxy, gcs_proxy = request.getfixturevalue("_gcp_stack")
    start = {proxy: len(proxy.since(0)) for proxy in (bq_proxy, gcs_proxy)}
    for proxy in start:
        proxy.current_test = request.node.nodeid
    yield
    sent = [r for proxy, first in start.items() for r in proxy.since(first)]
    problems = check_requests(sent)
    if problems:
        pytest.fail("requests that break BigQuery's documented rules:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def bq(gcp_emulators):
    """The real BigQuery client, against the emulator (through its proxy). Its requests are the
    test's own: the rule checks leave them out (by their user agent)."""
    from google.api_core.client_info import ClientInfo
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from taxi_pipeline_tests.helpers.bq_proxy import TEST_AGENT
    from taxi_pipeline_tests.helpers.emulators import PROJECT

    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(), client_info=ClientInfo(user_agent=TEST_AGENT),
                             client_options={"api_endpoint": gcp_emulators["BIGQUERY_EMULATOR_HOST"]})
    yield client
    client.close()
