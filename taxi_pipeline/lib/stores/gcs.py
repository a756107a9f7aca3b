"""The production bucket: Google Cloud Storage.

Objects are kept as the release publishes them (gzip): a fifth of the bytes to upload and store,
byte-identical to the source (its MD5 is checked end to end), and BigQuery load jobs read gzip
CSV directly. A local temporary file holds the download while it is validated; it is removed
once uploaded, or on failure, so at most one month is on local disk at a time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from google.api_core import exceptions as google_errors
from google.cloud import storage

from taxi_pipeline.lib.identifiers import validate_bucket_name, validate_object_key
from taxi_pipeline.lib.stores.base import PendingObject, StoredObject, StoreError

# Resumable upload in 32 MiB chunks: a broken connection resumes the chunk, not the month.
_CHUNK = 32 * 1024 * 1024


class GcsObjectStore:
    def __init__(self, client: storage.Client, bucket: str, location: str | None = None):
        self.client = client
        self.bucket_name = validate_bucket_name(bucket)
        self.location = location

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{validate_object_key(key)}"

    @contextlib.contextmanager
    def write(self, key: str) -> Iterator[PendingObject]:
        uri = self.uri(key)
        with tempfile.TemporaryDirectory(prefix="taxi-download-") as tmp:
            pending = PendingObject(Path(tmp) / Path(key).name)
            yield pending
            try:
                self._upload(key, pending)
            except (google_errors.GoogleAPIError, OSError, ValueError) as exc:
                raise StoreError(f"cannot write bucket object {uri}: {exc}") from exc

    def stat(self, key: str) -> StoredObject | None:
        blob = self._bucket().get_blob(validate_object_key(key))
        if blob is None:
            return None
        return StoredObject(self.uri(key), blob.size, dict(blob.metadata or {}))

    def _upload(self, key: str, pending: PendingObject) -> None:
        md5 = _md5_base64(pending.path)
        blob = self._bucket(create=True).blob(validate_object_key(key), chunk_size=_CHUNK)
        blob.metadata = {"size": str(pending.path.stat().st_size), **pending.metadata}
        # GCS publishes an object only when its upload completes: readers never see half of it.
        blob.upload_from_filename(str(pending.path), content_type="application/gzip", checksum="md5")
        blob.reload()
        if blob.md5_hash != md5:
            blob.delete()
            raise StoreError(f"{self.uri(key)}: MD5 after upload {blob.md5_hash} differs from the file's {md5}")

    def _bucket(self, create: bool = False) -> storage.Bucket:
        bucket = self.client.bucket(self.bucket_name)
        if create and not bucket.exists():
            # Like the course's setup flow: the bucket is created on first use.
            self.client.create_bucket(bucket, location=self.location)
        return bucket


def _md5_base64(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(8 * 1024 * 1024):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()
