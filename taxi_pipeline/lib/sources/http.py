"""Downloads one month's `.csv.gz` from the release (or an `http://` / `file://` mirror).

The bytes are streamed to a local file and validated on the way (see `csvgz`); transient network
faults are retried with exponential backoff and jitter, content errors are not (they would fail
the same way again).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from taxi_pipeline.lib.sources.csvgz import CsvGzipValidator, InvalidFileError
from taxi_pipeline.lib.identifiers import validate_object_key

DEFAULT_BASE_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"
_CHUNK = 1024 * 1024
_PROGRESS_EVERY = 64 * 1024 * 1024
_RETRIED_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})

log = logging.getLogger(__name__)


class SourceNotFoundError(InvalidFileError):
    """The month is not published at the source (HTTP 404 or a missing mirror file)."""


class SourceUnavailableError(RuntimeError):
    """The source kept failing with network errors after every retry."""


class _TransientError(Exception):
    """A fault worth another attempt: connection refused or reset, a timeout, a 5xx."""


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 5
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    timeout_s: float = 60.0  # per socket read, so a stalled server is noticed

    def delay(self, failed_attempt: int) -> float:
        """Full-jitter exponential backoff: spreads out the retries of concurrent backfill runs."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2 ** (failed_attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Download:
    url: str
    compressed_bytes: int
    uncompressed_bytes: int
    data_rows: int
    md5_hex: str
    attempts: int


def month_url(base_url: str, object_key: str) -> str:
    """`<base>/<colour>/<colour>_tripdata_YYYY-MM.csv.gz`: the release's layout, and a mirror's."""
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https", "file"):
        raise ValueError(f"TAXI_SOURCE_URL must be an http(s):// or file:// URL, got {base_url!r}")
    return f"{base_url.rstrip('/')}/{validate_object_key(object_key)}"


def download(
    url: str,
    dest: Path,
    header: tuple[str, ...],
    retry: RetrySettings = RetrySettings(),
    progress: Callable[[str], None] = log.info,
) -> Download:
    """Streams `url` into `dest`, validating it; returns what was checked. Raises on bad content."""
    file_name = url.rsplit("/", 1)[-1]
    for attempt in range(1, retry.attempts + 1):
        try:
            return _download_once(url, dest, header, retry.timeout_s, progress, attempt)
        except _TransientError as exc:
            if attempt == retry.attempts:
                raise SourceUnavailableError(
                    f"{file_name}: giving up after {attempt} attempts; last error: {exc} ({url})"
                ) from exc
            delay = retry.delay(attempt)
            progress(f"{file_name}: attempt {attempt} failed ({exc}); retrying in {delay:.1f} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def _download_once(
    url: str, dest: Path, header: tuple[str, ...], timeout_s: float,
    progress: Callable[[str], None], attempt: int,
) -> Download:
    file_name = url.rsplit("/", 1)[-1]
    validator = CsvGzipValidator(file_name, header)
    md5 = hashlib.md5()
    size = 0
    with _open(url, file_name, timeout_s) as response, open(dest, "wb") as out:
        while chunk := _read(response, file_name):
            validator.feed(chunk)
            md5.update(chunk)
            out.write(chunk)
            size += len(chunk)
            if size % _PROGRESS_EVERY < len(chunk):
                progress(f"{file_name}: {size / 2**20:,.0f} MiB downloaded")
        _check_complete(response, file_name, size)
    stats = validator.finish()
    return Download(url, size, stats.uncompressed_bytes, stats.data_rows, md5.hexdigest(), attempt)


def _open(url: str, file_name: str, timeout_s: float):
    try:
        return urllib.request.urlopen(url, timeout=timeout_s)  # file:// is wanted; the scheme is checked in month_url
    except urllib.error.HTTPError as exc:
        if exc.code in _RETRIED_HTTP_CODES:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from exc
        if exc.code in (403, 404, 410):
            raise SourceNotFoundError(file_name, f"not published at the source (HTTP {exc.code}): {url}") from exc
        raise InvalidFileError(file_name, f"HTTP {exc.code} {exc.reason} from {url}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):
            raise SourceNotFoundError(file_name, f"not found in the mirror: {url}") from exc
        if isinstance(exc.reason, (OSError, socket.timeout)):
            raise _TransientError(f"cannot connect: {exc.reason}") from exc
        raise
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _TransientError(f"{type(exc).__name__}: {exc}") from exc


def _read(response, file_name: str) -> bytes:
    try:
        return response.read(_CHUNK)
    except TimeoutError as exc:
        raise _TransientError("the server stalled: no data within the read timeout") from exc
    except (ConnectionError, http.client.IncompleteRead, http.client.HTTPException) as exc:
        raise _TransientError(f"connection broke mid-stream ({type(exc).__name__}: {exc})") from exc


def _check_complete(response, file_name: str, size: int) -> None:
    """A body shorter than its Content-Length is a broken transfer, not a broken file: retry it."""
    expected = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    if expected is not None and expected.isdigit() and int(expected) != size:
        raise _TransientError(f"transfer ended at {size:,} of {int(expected):,} bytes")


def is_published(url: str, timeout_s: float = 30.0) -> bool:
    """Whether the source has the file now (a HEAD request; for a `file://` mirror, the file)."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):  # scheme checked in month_url
            return True
    except urllib.error.HTTPError as exc:
        if exc.code in (403, 404, 410):
            return False
        raise
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):
            return False
        raise
