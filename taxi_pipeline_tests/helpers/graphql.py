"""One GraphQL request to a Dagster webserver, as the UI sends it: for the tests and benchmarks
that drive a running webserver (launch a backfill, read runs, set the UI's first-visit flag)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def graphql(base_url: str, document: str, variables: dict | None = None, timeout_s: float = 60) -> dict:
    """The answer's `data`; an HTTP error or an answer with `errors` fails with the server's words."""
    request = urllib.request.Request(
        f"{base_url}/graphql", headers={"Content-Type": "application/json"},
        data=json.dumps({"query": document, "variables": variables or {}}).encode())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{error}: {error.read().decode()[-3000:]}") from error
    assert "errors" not in body, body
    return body["data"]
