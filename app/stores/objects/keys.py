"""Object keys: where an asset's bytes live, and where its upload may land.

``tenants/{tenant}/media/{asset}/{filename}`` holds the bytes of a READY asset. Only the app
writes there (by promoting a checked upload), never a client, so no upload URL, live or
leaked, can change what a READY asset serves.

``uploads/{tenant}/{asset}/{filename}`` is where the asset's presigned PUT lands. The area
has a prefix of its own, outside ``tenants/``, so the sweeper lists dead uploads with one
paginated LIST whatever the number of tenants, and an S3 lifecycle rule can cover it with one
prefix filter (docs/decisions/0018-upload-urls-die-with-their-asset.md).
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple
from uuid import UUID

from app.errors import BadUserInput

FILENAME_MAX = 200  # bytes of UTF-8: leaves room in a 255-byte file name and a 1024-byte S3 key


def clean_filename(filename: str) -> str:
    """A filename safe as the last segment of a key and of a URL path.

    Path separators, dot-only names and control characters are refused rather than
    rewritten, so the name a client sees is the name it sent.
    """
    name = unicodedata.normalize("NFC", filename.strip())
    if not name or len(name.encode()) > FILENAME_MAX:
        raise BadUserInput(
            f"'filename' must be 1 to {FILENAME_MAX} bytes of UTF-8", field="filename"
        )
    if "/" in name or "\\" in name or name in {".", ".."}:
        raise BadUserInput("'filename' must not contain path separators", field="filename")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in name):
        raise BadUserInput("'filename' must not contain control characters", field="filename")
    return name


def media_key(tenant_id: UUID, asset_id: UUID, filename: str) -> str:
    return f"tenants/{tenant_id}/media/{asset_id}/{filename}"


def tenant_prefix(tenant_id: UUID) -> str:
    return f"tenants/{tenant_id}/"


UPLOADS_PREFIX = "uploads/"


def upload_key(tenant_id: UUID, asset_id: UUID, filename: str) -> str:
    """Where the client's PUT for this asset lands; unique per upload request (asset id)."""
    return f"{UPLOADS_PREFIX}{tenant_id}/{asset_id}/{filename}"


class UploadKey(NamedTuple):
    tenant_id: UUID
    asset_id: UUID
    filename: str


def parse_upload_key(key: str) -> UploadKey | None:
    """The parts of a key made by :func:`upload_key`, or None for any other key."""
    if not key.startswith(UPLOADS_PREFIX):
        return None
    parts = key[len(UPLOADS_PREFIX) :].split("/")
    if len(parts) != 3 or not parts[2]:
        return None
    try:
        tenant_id, asset_id = UUID(parts[0]), UUID(parts[1])
    except ValueError:
        return None
    # UUID() accepts other spellings (braces, no dashes, upper case); only ours round-trip.
    if upload_key(tenant_id, asset_id, parts[2]) != key:
        return None
    return UploadKey(tenant_id, asset_id, parts[2])
