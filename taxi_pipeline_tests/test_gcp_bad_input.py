"""Every bad input on GCS + BigQuery (fake-gcs-server and local-bigquery through the recording
proxies, the real clients, a loopback HTTP source): the step that must refuse it fails with a
message naming the file; the main table's checksum (count and the ids' MD5) is as it was; the
month's object in the bucket is still the good file (its MD5); a file refused while staging is
kept under `rejected/` with the error; the raw asset's last materialization names the good file.
The cases run one after another against one bucket and dataset: a sequence of bad runs.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import uuid

import pytest
from google.cloud import storage

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline_tests.helpers.bad_inputs import (
    CASES,
    STAGING,
    Case,
    failure,
    forbidden,
    md5,
    raw_materializations,
)
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, TLC, load_month
from taxi_pipeline_tests.test_bad_input import good_bytes
from taxi_pipeline_tests.test_gcp import gcp_resources

pytestmark = pytest.mark.gcp


def table_checksum(bq, dataset: str) -> tuple[int, str]:
    """Rows, and the MD5 of every id in order: computed by BigQuery, compared here."""
    [(rows, digest)] = list(bq.query(
        f"SELECT COUNT(*), TO_HEX(MD5(STRING_AGG(TO_HEX(unique_row_id), ',' ORDER BY unique_row_id))) "
        f"FROM `{PROJECT}.{dataset}.green_tripdata`").result())
    return rows, digest


def object_md5(blob: storage.Blob) -> str:
    return base64.b64decode(blob.md5_hash).hex()


@pytest.fixture(scope="module")
def loaded(gcp_emulators, tmp_path_factory):
    """One bucket and dataset with real green 2020-04, 2020-10 and 2025-01 loaded, and a source
    that serves what each case writes (release layout and the TLC's flat one in one folder)."""
    root = tmp_path_factory.mktemp("gcp_bad") / "source"
    shutil.copytree(MIRROR, root)
    shutil.copy(TLC / "green_tripdata_2025-01.parquet", root / "green_tripdata_2025-01.parquet")
    suffix = uuid.uuid4().hex[:8]
    names = {"bucket": f"taxi-bad-{suffix}", "dataset": f"zoomcamp_bad_{suffix}"}
    with serve_folder(root) as server:
        resources = gcp_resources(server.url, **names, tlc_url=server.url)
        for month in ("2020-04-01", "2020-10-01", "2025-01-01"):
            assert load_month(GREEN, month, resources).success
        yield server, root, resources, names


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_file_fails_in_its_step_and_bigquery_and_the_bucket_keep_the_good_month(loaded, bq, name):
    server, root, resources, names = loaded
    case: Case = CASES[name]
    bucket = storage.Client(project=PROJECT).bucket(names["bucket"])
    before = table_checksum(bq, names["dataset"])
    path = root / "green" / case.object_name if case.format == "csv" else root / case.object_name
    served = case.body()
    if served is None:
        path.unlink()
    else:
        path.write_bytes(served)
    try:
        if case.forbidden:
            server.faults.append(forbidden)
        result = load_month(GREEN, case.partition, resources, raise_on_error=False)
    finally:
        path.write_bytes(good_bytes(case))  # the next case starts from the good file at the source
    assert not result.success
    step, message = failure(result)
    assert step == case.step, message
    for text in (case.file_name, *case.expected):
        assert text in message, message
    assert table_checksum(bq, names["dataset"]) == before
    month_object = bucket.get_blob(f"green/{case.object_name}")
    assert object_md5(month_object) == md5(good_bytes(case)) == month_object.metadata["md5"]
    assert list(bucket.list_blobs(prefix="green/pending/")) == []
    rejected = bucket.get_blob(f"green/rejected/{case.object_name}")
    if case.step == STAGING:
        assert object_md5(rejected) == hashlib.md5(served).hexdigest()
        assert rejected.metadata["publication"] == "rejected"
        assert all(text in rejected.metadata["error"] for text in case.expected)
        *_, last = raw_materializations(result)
        assert last["md5"] == md5(good_bytes(case)) and last["rejected_md5"] == md5(served)
        bucket.blob(f"green/rejected/{case.object_name}").delete()  # the next case sees only its own
    else:
        assert rejected is None and raw_materializations(result) == []
