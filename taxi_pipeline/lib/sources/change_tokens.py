"""What a source says of a file without sending it (ETag, Content-Length, Last-Modified): the
change tokens the sensor compares with those of the loaded file, in one type with its one way in
and out of metadata (the bucket object's, as strings; the raw asset's, with -1 and "" for
unknown).

The TLC's ETag is an S3 multipart ETag, not an MD5: a change token only, as are the length and
Last-Modified.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_NAMES = ("etag", "content_length", "last_modified")


@dataclass(frozen=True)
class ChangeTokens:
    content_length: int | None
    etag: str | None
    last_modified: str | None

    def as_metadata(self) -> dict[str, str]:
        """For a bucket object's metadata: the known tokens, as strings."""
        return {k: str(v) for k in _NAMES if (v := getattr(self, k)) is not None}

    def as_asset_metadata(self) -> dict[str, object]:
        """For a Dagster materialization: every token, -1 or "" where the source did not say."""
        return {"etag": self.etag or "", "content_length": -1 if self.content_length is None else self.content_length,
                "last_modified": self.last_modified or ""}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> ChangeTokens:
        """From either form above."""
        length = metadata.get("content_length")
        if isinstance(length, str):
            length = int(length) if length.isdigit() else None
        elif not isinstance(length, int) or length < 0:
            length = None
        return cls(length, str(metadata.get("etag") or "") or None, str(metadata.get("last_modified") or "") or None)

    def changes_from(self, recorded: ChangeTokens) -> list[str]:
        """The tokens that differ from `recorded`, among those both know, as `name old -> new`."""
        differ = []
        for name in _NAMES:
            before, after = getattr(recorded, name), getattr(self, name)
            if before is not None and after is not None and before != after:
                differ.append(f"{name} {before} -> {after}")
        return differ
