"""The GCS bucket through the real google-cloud-storage client, against fake-gcs-server behind the
recording, fault-injecting proxy: which calls an upload makes (no bucket lookup: Storage Object
Admin has no storage.buckets.get), when a bucket is created, content types, a corrupted upload,
and the moves that publish or set aside a month's file.
"""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from google.cloud import storage

from taxi_pipeline.lib.stores.base import StoreError
from taxi_pipeline.lib.stores.gcs import GcsObjectStore
from taxi_pipeline_tests.helpers.emulators import PROJECT

pytestmark = pytest.mark.gcp


@pytest.fixture
def client(gcp_emulators):
    return storage.Client(project=PROJECT)


@pytest.fixture
def bucket_name():
    return f"taxi-store-{uuid.uuid4().hex[:8]}"


def _write(store: GcsObjectStore, key: str, data: bytes, **metadata: str):
    with store.write(key) as pending:
        pending.path.write_bytes(data)
        pending.metadata.update(metadata)
    return store.stat(key)


def _bucket_calls(proxy, start: int, bucket: str) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in proxy.since(start) if bucket in r.path or r.path.endswith("/b")]


def test_an_upload_creates_a_missing_bucket_only_when_told_it_is_missing(client, gcs_proxy, bucket_name):
    start = len(gcs_proxy.since(0))
    stored = _write(GcsObjectStore(client, bucket_name, "US"), "green/x.csv.gz", b"\x1f\x8bdata", md5="m")
    calls = _bucket_calls(gcs_proxy, start, bucket_name)
    # No GET of the bucket (storage.buckets.get) at any point: the upload itself says it is missing.
    assert not [c for c in calls if c[0] == "GET" and c[1].rstrip("/").endswith(f"/b/{bucket_name}")], calls
    creates = [i for i, c in enumerate(calls) if c[0] == "POST" and c[1].rstrip("/").endswith("/b")]
    uploads = [i for i, c in enumerate(calls) if "/upload/" in c[1] and c[0] == "POST"]
    assert len(creates) == 1 and len(uploads) == 2 and uploads[0] < creates[0] < uploads[1], calls
    assert calls[uploads[0]][2] == 404, calls
    assert stored.metadata["md5"] == "m" and stored.size == 6
    assert client.bucket(bucket_name).get_blob("green/x.csv.gz").content_type == "application/gzip"
    # Into a bucket that exists: one upload, nothing else about the bucket.
    again = len(gcs_proxy.since(0))
    _write(GcsObjectStore(client, bucket_name, "US"), "green/y.csv.gz", b"\x1f\x8bmore")
    calls = _bucket_calls(gcs_proxy, again, bucket_name)
    assert [c for c in calls if "/upload/" in c[1] and c[0] == "POST"] and not [c for c in calls if c[1].endswith("/b")], calls


def test_a_missing_bucket_that_may_not_be_created_is_a_clear_error_naming_the_role(client, gcs_proxy, bucket_name):
    with pytest.raises(StoreError, match=rf"bucket gs://{bucket_name} does not exist: create it, .*Storage Admin \(roles/storage.admin"):
        _write(GcsObjectStore(client, bucket_name, "US", create_bucket=False), "green/x.csv.gz", b"data")
    gcs_proxy.fail_next(lambda r: r.method == "POST" and r.path.rstrip("/").endswith("/b"), 403,
                        {"error": {"code": 403, "message": "caller does not have storage.buckets.create access"}})
    with pytest.raises(StoreError, match=rf"gs://{bucket_name} does not exist and this account may not create it.*roles/storage.admin"):
        _write(GcsObjectStore(client, bucket_name, "US"), "green/x.csv.gz", b"data")


def test_parquet_objects_carry_the_parquet_media_type(client, bucket_name):
    store = GcsObjectStore(client, bucket_name, "US")
    _write(store, "green/green_tripdata_2025-01.parquet", b"PAR1....PAR1")
    blob = client.bucket(bucket_name).get_blob("green/green_tripdata_2025-01.parquet")
    assert blob.content_type == "application/vnd.apache.parquet"


def test_an_upload_whose_checksum_comes_back_wrong_is_a_store_error(client, gcs_proxy, bucket_name):
    store = GcsObjectStore(client, bucket_name, "US")
    _write(store, "green/first.csv.gz", b"x")  # the bucket exists now
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    gcs_proxy.rewrite_next(lambda r: r.method in ("PUT", "POST") and "/upload/" in r.path and isinstance(r.response, dict)
                           and "md5Hash" in r.response, lambda response: {**response, "md5Hash": wrong})
    # Over 8 MiB, so a resumable upload (the client checks a resumable upload's MD5 itself and
    # raises DataCorruption; a smaller multipart upload sends its MD5 for the service to check).
    with pytest.raises(StoreError, match="cannot write bucket object gs://.*/green/x.csv.gz") as raised:
        _write(store, "green/x.csv.gz", b"\x1f\x8b" + bytes(range(256)) * (9 * 4096))
    assert type(raised.value.__cause__).__name__ == "DataCorruption"


def test_move_replaces_the_destination_in_one_step_and_removes_the_source(client, bucket_name):
    store = GcsObjectStore(client, bucket_name, "US")
    _write(store, "green/m.csv.gz", b"old", md5="old")
    _write(store, "green/pending/run1/m.csv.gz", b"new bytes", md5="new", publication="staged")
    store.update_metadata("green/pending/run1/m.csv.gz", {"publication": "merging"})
    assert [o.key for o in store.list("green/pending/")] == ["green/pending/run1/m.csv.gz"]
    moved = store.move("green/pending/run1/m.csv.gz", "green/m.csv.gz", {"publication": "published"})
    assert moved.metadata["md5"] == "new" and moved.metadata["publication"] == "published"
    blob = client.bucket(bucket_name).get_blob("green/m.csv.gz")
    assert blob.download_as_bytes() == b"new bytes" and blob.content_type == "application/gzip"
    assert store.stat("green/pending/run1/m.csv.gz") is None and store.list("green/pending/") == []
    with pytest.raises(StoreError, match="does not exist"):
        store.move("green/pending/run1/m.csv.gz", "green/m.csv.gz")
