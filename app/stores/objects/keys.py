"""Object keys: ``tenants/{tenant}/media/{asset}/{filename}``, every key inside its tenant."""

from __future__ import annotations

import unicodedata
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
