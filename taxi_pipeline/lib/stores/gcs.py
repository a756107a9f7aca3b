"""The production bucket: Google Cloud Storage.

Objects are kept as their source publishes them (gzip CSV, Parquet): byte-identical to the source
(the MD5 is checked end to end), and BigQuery load jobs read both directly. A local temporary
file holds the download while it is validated; it is removed once uploaded, or on failure, so at
most one month is on local disk at a time.

Every call needs only the permissions of Storage Object Admin (`gcp_roles.ROLES`): no
`bucket.exists()` (storage.buckets.get) before an upload; the bucket is created only when an
upload says it does not exist, and only if `create_bucket` allows it (Storage Admin).
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
from google.cloud.storage.exceptions import DataCorruption

from taxi_pipeline.lib.gcp_roles import role_granting
from taxi_pipeline.lib.identifiers import validate_bucket_name, validate_object_key
from taxi_pipeline.lib.stores.base import PendingObject, StoredObject, StoreError

# Resumable upload in 32 MiB chunks: a broken connection resumes the chunk, not the month.
_CHUNK = 32 * 1024 * 1024
# The registered media type of Parquet: https://www.iana.org/assignments/media-types/application/vnd.apache.parquet
_CONTENT_TYPES = {".parquet": "application/vnd.apache.parquet", ".gz": "application/gzip"}
# What an upload may fail with besides the API's own errors: a broken transfer (OSError), an
# MD5 that differs after upload (DataCorruption), a bad argument (ValueError).
_TRANSFER_ERRORS = (google_errors.GoogleAPIError, OSError, ValueError, DataCorruption)


def content_type(key: str) -> str:
    return _CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")


class GcsObjectStore:
    def __init__(self, client: storage.Client, bucket: str, location: str | None = None, create_bucket: bool = True):
        # google-cloud-storage 3.x looks each bucket up (storage.buckets.get) on a background
        # thread, for attributes of its telemetry spans; without its cache it makes no such call
        # (the documented switch is the process-wide DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA).
        if getattr(client, "_bucket_metadata_cache", None) is not None:
            client._bucket_metadata_cache = None
        self.client = client
        self.bucket_name = validate_bucket_name(bucket)
        self.location = location
        self.create_bucket = create_bucket

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
            except StoreError:
                raise
            except _TRANSFER_ERRORS as exc:
                raise StoreError(f"cannot write bucket object {uri}: {exc}") from exc

    def remove_leftovers(self, prefix: str) -> list[str]:
        """Nothing to remove: a download is written to a local temporary folder, and an upload
        that never finished is not an object."""
        return []

    def stat(self, key: str) -> StoredObject | None:
        try:
            blob = self._bucket().get_blob(validate_object_key(key))
        except google_errors.NotFound:
            return None  # no bucket yet: no object
        return None if blob is None else self._stored(blob)

    def list(self, prefix: str) -> list[StoredObject]:
        try:
            return [self._stored(blob) for blob in self.client.list_blobs(self.bucket_name, prefix=prefix)]
        except google_errors.NotFound:
            return []

    def update_metadata(self, key: str, metadata: dict[str, str]) -> None:
        blob = self._bucket().blob(validate_object_key(key))
        blob.metadata = metadata  # a patch: keys not named keep their values
        try:
            blob.patch()
        except google_errors.GoogleAPIError as exc:
            raise StoreError(f"cannot update bucket object {self.uri(key)}: {exc}") from exc

    def move(self, source: str, dest: str, metadata: dict[str, str] | None = None) -> StoredObject:
        """A server-side rewrite (storage.objects.get + create, + delete to replace `dest`), then
        the source is deleted. GCS replaces `dest` in one step: a reader sees the old object or
        the new one. https://cloud.google.com/storage/docs/json_api/v1/objects/rewrite"""
        bucket = self._bucket()
        try:
            src = bucket.get_blob(validate_object_key(source))
            if src is None:
                raise StoreError(f"cannot move bucket object {self.uri(source)}: it does not exist")
            target = bucket.blob(validate_object_key(dest))
            token, _, _ = target.rewrite(src, if_source_generation_match=src.generation)
            while token is not None:  # a large object across locations or classes takes several calls
                token, _, _ = target.rewrite(src, token=token, if_source_generation_match=src.generation)
            if metadata:
                target.metadata = metadata
                target.patch()
            src.delete(if_generation_match=src.generation)
            target.reload()
        except google_errors.GoogleAPIError as exc:
            raise StoreError(f"cannot move bucket object {self.uri(source)} to {self.uri(dest)}: {exc}") from exc
        return self._stored(target)

    def delete(self, key: str) -> None:
        try:
            self._bucket().blob(validate_object_key(key)).delete()
        except google_errors.NotFound:
            return  # gone already: the goal
        except google_errors.GoogleAPIError as exc:
            raise StoreError(f"cannot delete bucket object {self.uri(key)}: {exc}") from exc

    def _stored(self, blob: storage.Blob) -> StoredObject:
        return StoredObject(self.uri(blob.name), blob.size, dict(blob.metadata or {}), blob.name)

    def _upload(self, key: str, pending: PendingObject) -> None:
        md5 = _md5_base64(pending.path)
        blob = self._bucket().blob(validate_object_key(key), chunk_size=_CHUNK)
        blob.metadata = {"size": str(pending.path.stat().st_size), **pending.metadata}
        try:
            self._upload_file(blob, pending.path, key)
        except google_errors.NotFound as exc:
            # The only 404 an upload gets is the bucket's: create it (if allowed) and upload again.
            self._create_bucket(exc)
            self._upload_file(blob, pending.path, key)
        blob.reload()
        if blob.md5_hash != md5:
            blob.delete()
            raise StoreError(f"{self.uri(key)}: MD5 after upload {blob.md5_hash} differs from the file's {md5}")

    @staticmethod
    def _upload_file(blob: storage.Blob, path: Path, key: str) -> None:
        # GCS publishes an object only when its upload completes: readers never see half of it.
        blob.upload_from_filename(str(path), content_type=content_type(key), checksum="md5")

    def _create_bucket(self, cause: Exception) -> None:
        role = role_granting("storage.buckets.create")
        if not self.create_bucket:
            raise StoreError(
                f"bucket gs://{self.bucket_name} does not exist: create it, or let the pipeline create "
                f"it by granting {role.title} ({role.name}, storage.buckets.create) on {role.granted_on}"
            ) from cause
        try:
            # Like the course's setup flow: the bucket is created on first use.
            self.client.create_bucket(self.bucket_name, location=self.location)
        except google_errors.Conflict:
            pass  # another run created it in the meantime
        except google_errors.Forbidden as exc:
            raise StoreError(
                f"bucket gs://{self.bucket_name} does not exist and this account may not create it: "
                f"create it, or grant {role.title} ({role.name}, storage.buckets.create) on {role.granted_on}: {exc}"
            ) from exc

    def _bucket(self) -> storage.Bucket:
        return self.client.bucket(self.bucket_name)


def _md5_base64(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(8 * 1024 * 1024):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()
