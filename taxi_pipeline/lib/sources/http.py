"""Streams one month's file from a source (https://, a loopback http:// mirror, or file://).

The bytes go to a local file and through the source's validator on the way; transient network
faults (refused or reset connections, timeouts, 5xx, 429, a body shorter than its Content-Length)
are retried with exponential backoff and jitter. Content errors are not: they would fail the same
way again. urllib is enough here: one GET or HEAD per month, streamed, with no session to keep.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from taxi_pipeline.lib.sources.base import InvalidFileError, SourceNotFoundError, Validator
from taxi_pipeline.lib.sources.change_tokens import ChangeTokens

_CHUNK = 1024 * 1024
_PROGRESS_EVERY = 64 * 1024 * 1024
_RETRIED_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
# CloudFront answers 403 (S3 AccessDenied) for a month it does not have yet, not 404.
_NOT_PUBLISHED_HTTP_CODES = frozenset({403, 404, 410})

log = logging.getLogger(__name__)


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
    # The whole download, every attempt included: a source that trickles a byte now and then
    # never trips the read timeout. Two hours take a 700 MB month at 0.8 Mbit/s.
    deadline_s: float = 7200.0

    def delay(self, failed_attempt: int) -> float:
        """Full-jitter exponential backoff: spreads out the retries of concurrent backfill runs."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2 ** (failed_attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Download:
    url: str
    bytes: int
    data_rows: int
    md5_hex: str
    attempts: int
    tokens: ChangeTokens  # what the source said of the file
    details: dict[str, str]  # what the validator found, kept with the object


def check_base_url(base_url: str, variable: str) -> str:
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https", "file"):
        raise ValueError(f"{variable} must be an http(s):// or file:// URL, got {base_url!r}")
    return base_url.rstrip("/")


def download(
    url: str,
    dest: Path,
    validator: Callable[[], Validator],
    retry: RetrySettings = RetrySettings(),
    progress: Callable[[str], None] = log.info,
) -> Download:
    """Streams `url` into `dest` through a fresh validator per attempt; raises on bad content."""
    file_name = url.rsplit("/", 1)[-1]
    clock = _Clock(file_name, time.monotonic() + retry.deadline_s, retry.deadline_s, progress)
    for attempt in range(1, retry.attempts + 1):
        try:
            return _download_once(url, dest, validator(), retry.timeout_s, progress, attempt, clock)
        except _DeadlineError as exc:
            raise SourceUnavailableError(f"{file_name}: {exc} ({url})") from exc
        except _TransientError as exc:
            if attempt == retry.attempts:
                raise SourceUnavailableError(
                    f"{file_name}: giving up after {attempt} attempts; last error: {exc} ({url})"
                ) from exc
            delay = retry.delay(attempt)
            progress(f"{file_name}: attempt {attempt} failed ({exc}); retrying in {delay:.1f} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


class _DeadlineError(_TransientError):
    """The download's overall deadline passed: no attempt is left."""


class _Clock:
    """The download's deadline, and a progress line at least every minute while bytes come slowly."""

    EVERY_S = 60.0

    def __init__(self, file_name: str, deadline: float, deadline_s: float, progress: Callable[[str], None]):
        self.file_name, self.deadline, self.deadline_s, self.progress = file_name, deadline, deadline_s, progress
        self.started = self.last_said = time.monotonic()

    def tick(self, size: int) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise _DeadlineError(
                f"still downloading after {self.deadline_s:,.0f} s ({size:,} bytes so far): the source is too "
                "slow or trickling; try again later, or raise TAXI_DOWNLOAD_DEADLINE_S"
            )
        if now - self.last_said >= self.EVERY_S:
            self.last_said = now
            self.progress(f"{self.file_name}: {size:,} bytes after {now - self.started:,.0f} s")


def _download_once(
    url: str, dest: Path, validator: Validator, timeout_s: float,
    progress: Callable[[str], None], attempt: int, clock: _Clock | None = None,
) -> Download:
    file_name = url.rsplit("/", 1)[-1]
    md5 = hashlib.md5()
    size = 0
    # The validator reads chunk i on a second core while this thread receives, hashes and writes
    # chunk i+1: inflating, hashing and the socket all release the GIL (0.7 s of a 160 MiB month).
    # One chunk in flight, so the bytes are fed in order and a bad one stops the download.
    with (
        _open(url, file_name, timeout_s) as response, open(dest, "wb") as out,
        ThreadPoolExecutor(1, thread_name_prefix="validate") as validating,
    ):
        tokens = _tokens(response)
        fed = None
        try:
            while chunk := _read(response, clock, size):
                if fed is not None:
                    fed.result()  # raises the validator's error, if any
                fed = validating.submit(validator.feed, chunk)
                md5.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if size % _PROGRESS_EVERY < len(chunk):
                    progress(f"{file_name}: {size / 2**20:,.0f} MiB downloaded")
            if fed is not None:
                fed.result()
        except Exception as exc:
            # What the bytes already read say wins: an HTML page whose connection then stalls is
            # a bad file (not retried), not a network fault.
            found = fed.exception() if fed is not None else None
            if found is not None and found is not exc:
                raise found from exc
            raise
        _check_complete(tokens, size)
    validated = validator.finish(dest)
    return Download(url, size, validated.data_rows, md5.hexdigest(), attempt, tokens, validated.details)


def _open(url: str, file_name: str, timeout_s: float, method: str = "GET"):
    request = urllib.request.Request(url, method=method)
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)  # file:// is wanted; schemes checked above
    except urllib.error.HTTPError as exc:
        if exc.code in _RETRIED_HTTP_CODES:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from exc
        if exc.code in _NOT_PUBLISHED_HTTP_CODES:
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


def _read(response, clock: _Clock | None = None, size: int = 0) -> bytes:
    """The next chunk of `_CHUNK` bytes (fewer at the end). Read in pieces as they arrive, so
    that the deadline is looked at while a slow source fills the chunk."""
    read1 = getattr(response, "read1", None)
    try:
        if read1 is None or clock is None:
            return response.read(_CHUNK)
        parts, got = [], 0
        while got < _CHUNK:
            clock.tick(size + got)
            part = read1(_CHUNK - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)
    except TimeoutError as exc:
        raise _TransientError("the server stalled: no data within the read timeout") from exc
    except (ConnectionError, http.client.IncompleteRead, http.client.HTTPException) as exc:
        raise _TransientError(f"connection broke mid-stream ({type(exc).__name__}: {exc})") from exc


def _tokens(response) -> ChangeTokens:
    headers = getattr(response, "headers", None) or {}
    length = headers.get("Content-Length")
    return ChangeTokens(
        int(length) if length is not None and length.isdigit() else None,
        headers.get("ETag"), headers.get("Last-Modified"),
    )


def _check_complete(tokens: ChangeTokens, size: int) -> None:
    """A body shorter than its Content-Length is a broken transfer, not a broken file: retry it."""
    if tokens.content_length is not None and tokens.content_length != size:
        raise _TransientError(f"transfer ended at {size:,} of {tokens.content_length:,} bytes")


def probe(url: str, retry: RetrySettings | float = RetrySettings(), progress: Callable[[str], None] = log.info) -> ChangeTokens | None:
    """A HEAD request: the file's change tokens if the source has it now, None if not (403/404).

    Network faults (a reset, a stall, a 5xx) are retried with the downloads' backoff; after the
    last attempt `SourceUnavailableError` says so. A bare number is a timeout with one attempt."""
    if not isinstance(retry, RetrySettings):
        retry = RetrySettings(attempts=1, timeout_s=float(retry))
    file_name = url.rsplit("/", 1)[-1]
    for attempt in range(1, retry.attempts + 1):
        try:
            with _open(url, file_name, retry.timeout_s, method="HEAD") as response:
                return _tokens(response)
        except SourceNotFoundError:
            return None
        except _TransientError as exc:
            if attempt == retry.attempts:
                raise SourceUnavailableError(
                    f"{file_name}: cannot reach the source after {attempt} attempt(s); last error: {exc} ({url})"
                ) from exc
            delay = retry.delay(attempt)
            progress(f"{file_name}: HEAD attempt {attempt} failed ({exc}); retrying in {delay:.1f} s")
            time.sleep(delay)
    raise AssertionError("unreachable")
