"""How the commands print numbers."""

from __future__ import annotations


def size(n: int) -> str:
    """Bytes for a person: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB`."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def count(n: int, noun: str) -> str:
    """`1 table`, `3 tables`, `12,345 rows`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
