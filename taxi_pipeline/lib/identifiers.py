"""Validation of every name that ends up in SQL or in a path, before anything is built from it."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Bucket names and object keys: path segments of safe characters, no `..`, no leading slash.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,220}")


def validate_identifier(kind: str, value: str) -> str:
    """Returns `value` if it is a plain SQL identifier, else raises `ValueError` naming `kind`."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"invalid {kind} {value!r}: use letters, digits and underscores, starting with a letter"
        )
    return value


def validate_object_key(value: str) -> str:
    """Returns `value` if it is a relative `a/b/c.csv.gz` key with no `..`, else raises."""
    segments = value.split("/") if isinstance(value, str) else [""]
    if not all(_SEGMENT.fullmatch(s) and ".." not in s for s in segments):
        raise ValueError(f"invalid object key {value!r}: expected a relative path like 'green/x.csv.gz'")
    return value


def validate_bucket_name(value: str) -> str:
    """GCS bucket naming, narrowed: lower-case letters, digits, `-`, `_`, `.`, no `..`."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]", value or "") or ".." in value:
        raise ValueError(f"invalid bucket name {value!r}")
    return value
