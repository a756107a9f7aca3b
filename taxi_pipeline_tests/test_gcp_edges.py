"""The guard on shrinking months on GCS + BigQuery: the same refusal as on DuckDB (the guard reads
the bucket, not the warehouse), the file kept under `rejected/`, the month and its object as they
were; `accept_shrink=true` loads it."""

from __future__ import annotations

import gzip
import shutil

import pytest
from google.cloud import storage

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline_tests.helpers.bad_inputs import failure
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, load_month
from taxi_pipeline_tests.test_gcp import _counts, gcp_resources, names  # noqa: F401 (the fixture)

pytestmark = pytest.mark.gcp

KEY, FILE = "2019-10-01", "green_tripdata_2019-10.csv"


def test_a_file_that_guts_a_loaded_month_is_refused_on_bigquery_too(gcp_emulators, bq, names, tmp_path):  # noqa: F811
    root = tmp_path / "mirror"
    shutil.copytree(MIRROR, root)
    header, *rows = gzip.decompress((MIRROR / f"green/{FILE}.gz").read_bytes()).split(b"\r\n")
    with serve_folder(root) as server:
        resources = gcp_resources(server.url, **names)
        assert load_month(GREEN, KEY, resources).success
        bucket = storage.Client(project=PROJECT).bucket(names["bucket"])
        before = bucket.get_blob(f"green/{FILE}.gz").md5_hash
        (root / f"green/{FILE}.gz").write_bytes(gzip.compress(b"\r\n".join([header, *rows[1000:]])))
        result = load_month(GREEN, KEY, resources, raise_on_error=False)
        step, message = failure(result)
        assert step == "green_staging" and "1,308 rows loaded from" in message and "accept_shrink=true" in message
        assert _counts(bq, names["dataset"])[FILE] == (1_308, 1_308)
        assert bucket.get_blob(f"green/{FILE}.gz").md5_hash == before
        assert bucket.get_blob(f"green/rejected/{FILE}.gz") is not None
        assert load_month(GREEN, KEY, resources, tags={"accept_shrink": "true"}).success
    assert _counts(bq, names["dataset"])[FILE] == (308, 308)


def _csv_with(number: int, column: str, value: bytes) -> bytes:
    text = gzip.decompress((MIRROR / f"green/{FILE}.gz").read_bytes())
    lines = text.split(b"\r\n")
    fields = lines[number - 1].split(b",")
    fields[GREEN.header.index(column)] = value
    lines[number - 1] = b",".join(fields)
    return gzip.compress(b"\r\n".join(lines), mtime=0)


# What the emulator's load job says of files the DuckDB target refuses while staging
# (test_edges.py): each is refused in staging, named, kept under rejected/, the month untouched.
STAGING_REFUSALS = {
    "quoted line break": lambda: _csv_with(900, "store_and_fwd_flag", b'"N\r\nY"'),
    "invalid utf-8": lambda: _csv_with(777, "store_and_fwd_flag", b"N\xff"),
}


@pytest.mark.parametrize("case", list(STAGING_REFUSALS))
def test_a_file_bigquery_refuses_while_staging_is_named_and_kept_aside(case, gcp_emulators, bq, names, tmp_path):  # noqa: F811
    root = tmp_path / "mirror"
    shutil.copytree(MIRROR, root)
    with serve_folder(root) as server:
        resources = gcp_resources(server.url, **names)
        assert load_month(GREEN, KEY, resources).success
        (root / f"green/{FILE}.gz").write_bytes(STAGING_REFUSALS[case]())
        result = load_month(GREEN, KEY, resources, raise_on_error=False)
    step, message = failure(result)
    first = message.splitlines()[0]
    print(f"\n{case} on BigQuery (the emulator): {first[:300]}")
    assert step == "green_staging" and FILE in first, message
    assert _counts(bq, names["dataset"])[FILE] == (1_308, 1_308)
    bucket = storage.Client(project=PROJECT).bucket(names["bucket"])
    assert bucket.get_blob(f"green/rejected/{FILE}.gz") is not None
