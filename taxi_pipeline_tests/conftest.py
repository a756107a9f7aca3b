"""Fixtures: a loopback HTTP mirror of the real files in `data/mirror`, and a fresh TAXI_HOME."""

from __future__ import annotations

import pytest

from taxi_pipeline_tests.servers import MirrorServer, serve_folder
from taxi_pipeline_tests.support import MIRROR, make_resources


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
