"""A loopback HTTP proxy between the real Google clients and an emulator: it records every request
and can answer or rewrite the next matching one (fault injection without mocking a client).

One `Proxy` per emulator (local-bigquery, fake-gcs-server). The clients reach it through
BIGQUERY_EMULATOR_HOST / STORAGE_EMULATOR_HOST, `dagster` subprocesses included. fake-gcs-server
names itself (its -external-url) in resumable-upload `Location` headers and in objects'
`mediaLink`/`selfLink`, which the storage client then calls directly; the proxy rewrites the
emulator's address to its own in headers and JSON bodies, so uploads and downloads come back through it.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import http.server
import json
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy recomputes.
_DROP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
         "content-length", "host"}
_KEEP_RESPONSE = 1 << 20
# The user agent of the tests' own clients (the `bq` fixture): their requests are not the pipeline's.
TEST_AGENT = "taxi-pipeline-tests"  # responses larger than this are recorded by size only (query results, downloads)


@dataclasses.dataclass
class Recorded:
    """One request as the emulator saw it. `body` is the request's JSON (for a multipart upload,
    its metadata part), `response` the answer's JSON; None when not JSON."""
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int | None = None
    response: Any = None
    content_type: str = ""
    user_agent: str = ""
    test: str = ""  # the pytest node id current when the request came
    injected: str = ""  # "failed" or "rewritten" when a fault rule applied

    @property
    def by_tests(self) -> bool:
        return TEST_AGENT in self.user_agent

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)


Match = Callable[[Recorded], bool]


class Proxy:
    def __init__(self, upstream: str, log: Path, name: str):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream, self.name, self.log_path = upstream.rstrip("/"), name, log
        self._host, self._port = parsed.hostname, parsed.port
        self._lock = threading.Lock()
        self._fails: list[tuple[Match, int, dict]] = []
        self._rewrites: list[tuple[Match, Callable[[dict], dict]]] = []
        self.requests: list[Recorded] = []
        self.current_test = ""
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"proxy-{name}", daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, match: Match, status: int, body: dict) -> None:
        """Answer the next request `match` accepts with `status` and `body`, not forwarding it
        (`match` sees the request: its status and response are still None)."""
        with self._lock:
            self._fails.append((match, status, body))

    def rewrite_next(self, match: Match, fn: Callable[[dict], dict]) -> None:
        """Forward the next request `match` accepts (seen with its answer) and give the client
        `fn(response JSON)` instead of the answer's JSON."""
        with self._lock:
            self._rewrites.append((match, fn))

    def since(self, start: int) -> list[Recorded]:
        with self._lock:
            return list(self.requests[start:])

    def _take(self, rules: list, record: Recorded):
        with self._lock:
            for i, rule in enumerate(rules):
                try:
                    matched = rule[0](record)
                except Exception:  # a matcher that cannot read this request does not match it
                    matched = False
                if matched:
                    return rules.pop(i)
        return None

    def _record(self, record: Recorded) -> None:
        with self._lock:
            self.requests.append(record)
            with open(self.log_path, "a") as log:
                log.write(record.to_json() + "\n")

    def _forward(self, method: str, target: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=600)
        try:
            connection.request(method, target, body=body or None, headers={**headers, "Host": f"{self._host}:{self._port}"})
            answer = connection.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            connection.close()


def _json(data: bytes, content_type: str, encoding: str = "") -> Any:
    if "json" not in content_type or not data:
        return None
    if len(data) > _KEEP_RESPONSE:
        return {"_bytes": len(data)}
    try:
        return json.loads(gzip.decompress(data) if encoding == "gzip" else data)
    except ValueError:
        return None


def _request_json(data: bytes, content_type: str) -> Any:
    """The JSON of a request; for `multipart/related` (an object upload) its first, metadata part."""
    if content_type.startswith("multipart/related") and b"\r\n\r\n" in data:
        part = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
        return _json(part, "json")
    return _json(data, content_type)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    proxy: Proxy  # set by `_handler`
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # the JSONL log is the record
        pass

    def _handle(self) -> None:
        data = self._body()
        split = urllib.parse.urlsplit(self.path)
        content_type = self.headers.get("Content-Type", "")
        record = Recorded(
            self.command, split.path, dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
            _request_json(data, content_type), content_type=content_type,
            user_agent=self.headers.get("User-Agent", ""), test=self.proxy.current_test,
        )
        fail = self.proxy._take(self.proxy._fails, record)
        if fail is not None:
            _, status, body = fail
            record.status, record.response, record.injected = status, body, "failed"
            self._send(status, [("Content-Type", "application/json; charset=UTF-8")], json.dumps(body).encode())
        else:
            self._pass_through(record, data)
        self.proxy._record(record)

    def _pass_through(self, record: Recorded, data: bytes) -> None:
        """The emulator's answer, as it gave it (links rewritten to the proxy), or rewritten
        by the test."""
        # Uncompressed answers, so that JSON can be read and links rewritten.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROP | {"accept-encoding"}}
        status, answer_headers, answer = self.proxy._forward(self.command, self.path, headers, data)
        kind = {k.lower(): v for k, v in answer_headers}
        answer_headers = [(k, v.replace(self.proxy.upstream, self.proxy.url)) for k, v in answer_headers
                          if k.lower() not in _DROP | {"date", "server"}]
        encoding = kind.get("content-encoding", "")
        if "json" in kind.get("content-type", "") and encoding != "gzip":
            answer = answer.replace(self.proxy.upstream.encode(), self.proxy.url.encode())  # mediaLink, selfLink
        record.status, record.response = status, _json(answer, kind.get("content-type", ""), encoding)
        rewrite = self.proxy._take(self.proxy._rewrites, record) if isinstance(record.response, dict) else None
        if rewrite is not None:
            record.response, record.injected = rewrite[1](record.response), "rewritten"
            answer = json.dumps(record.response).encode()
            answer_headers = [(k, v) for k, v in answer_headers if k.lower() != "content-encoding"]
        length = kind.get("content-length") if self.command == "HEAD" else None
        self._send(status, answer_headers, answer, length)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: list, body: bytes, length: str | None = None) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", length or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def _handler(proxy: Proxy) -> type[http.server.BaseHTTPRequestHandler]:
    return type("Handler", (_ProxyHandler,), {"proxy": proxy})

