"""BigQuery's documented rules, held against the requests the gcp tests recorded (in progress)."""

from __future__ import annotations


def check_requests(requests) -> list[str]:
    return []
