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


# Names DuckDB keeps for itself (its system catalog and schemas, and `warehouse`, the catalog of
# the file `warehouse.duckdb`), where a schema of that name is refused or makes every reference
# ambiguous; BigQuery keeps INFORMATION_SCHEMA.
RESERVED_DATASETS = frozenset({"temp", "system", "main_temp", "information_schema", "pg_catalog", "warehouse"})


def validate_dataset(value: str) -> str:
    """Returns `value` if it can name the DuckDB schema and the BigQuery dataset of the tables."""
    validate_identifier("dataset name", value)
    if value.lower() in RESERVED_DATASETS:
        raise ValueError(
            f"{value!r} is a name the warehouse keeps for itself ({', '.join(sorted(RESERVED_DATASETS))}); "
            "choose another, e.g. zoomcamp"
        )
    return value


def validate_object_key(value: str) -> str:
    """Returns `value` if it is a relative `a/b/c.csv.gz` key with no `..`, else raises."""
    segments = value.split("/") if isinstance(value, str) else [""]
    if not all(_SEGMENT.fullmatch(s) and ".." not in s for s in segments):
        raise ValueError(f"invalid object key {value!r}: expected a relative path like 'green/x.csv.gz'")
    return value


# GCS's bucket naming rules, https://cloud.google.com/storage/docs/buckets#naming: 3-63 characters
# (up to 222 with dots, each dot-separated component at most 63), lower-case letters, digits, `-`,
# `_` and `.`, starting and ending with a letter or digit; not an IP address in dotted decimal;
# no `goog` prefix; no `google` or close misspellings of it anywhere.
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9_.-]*[a-z0-9]")
_IP_LIKE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
# "close misspellings": the letters GCS's own examples swap for look-alikes (g00gle, go0gle).
_GOOGLE_LIKE = re.compile(r"g[o0]{2}g[l1]e")


def validate_bucket_name(value: str) -> str:
    """Returns `value` if GCS would accept it as a bucket name, else raises `ValueError` saying
    which rule it breaks."""
    problem = _bucket_name_problem(value) if isinstance(value, str) else "not a string"
    if problem:
        raise ValueError(f"invalid bucket name {value!r}: {problem} (https://cloud.google.com/storage/docs/buckets#naming)")
    return value


def _bucket_name_problem(value: str) -> str | None:
    if not _BUCKET_CHARS.fullmatch(value):
        return ("use lower-case letters, digits, '-', '_' and '.', starting and ending with a letter "
                "or digit, at least 3 characters")
    problem = _bucket_length_problem(value)
    if problem:
        return problem
    if _IP_LIKE.fullmatch(value):
        return "an IP address in dotted-decimal notation"
    if value.startswith("goog"):
        return "names may not start with 'goog'"
    if _GOOGLE_LIKE.search(value):
        return "names may not contain 'google' or a close misspelling of it"
    return None


def _bucket_length_problem(value: str) -> str | None:
    if ".." in value or any(not part for part in value.split(".")):
        return "a dot must sit between two name components"
    if "." in value:
        if len(value) > 222:
            return f"{len(value)} characters; a name with dots has at most 222"
        long = [part for part in value.split(".") if len(part) > 63]
        if long:
            return f"component {long[0]!r} has {len(long[0])} characters; each has at most 63"
    elif len(value) > 63:
        return f"{len(value)} characters; a name without dots has at most 63"
    return "at least 3 characters" if len(value) < 3 else None
