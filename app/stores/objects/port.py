"""The object storage port: what the app needs from any store that keeps media files.

Presigning is synchronous on purpose: it is pure computation over a secret held in memory,
so a page of 100 media URLs costs no network call at all. Only HEAD (to confirm an upload),
the promotion of a checked upload, DELETE, the sweeper's listing and the health check touch
the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None
    etag: str | None = None


@dataclass(frozen=True)
class PresignedUpload:
    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None


class ObjectStore(Protocol):
    name: str

    def presign_get(self, key: str, expires_in: int) -> str:
        """A URL anyone holding it may GET until it expires."""
        ...

    def presign_put(self, key: str, content_type: str, expires_in: int) -> PresignedUpload:
        """A URL and the headers a client must send to upload the object directly."""
        ...

    async def head(self, key: str) -> ObjectInfo | None:
        """The stored object's size and type, or None when nothing is stored under ``key``."""
        ...

    async def promote(
        self, source: str, target: str, *, etag: str | None, content_type: str
    ) -> bool:
        """Make the object now at ``source`` the object at ``target``, stored as ``content_type``.

        Only the version ``etag`` names is promoted (when ``etag`` is given): an upload that
        changed since it was checked is never what ``target`` serves. False, with ``target``
        untouched, when ``source`` is missing or no longer that version. ``source`` may be gone
        afterwards (the local store moves it) or still there (S3 copies it); the caller
        deletes it either way.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""
        ...

    def list_keys(self, prefix: str) -> AsyncIterator[str]:
        """Every key under ``prefix``, page by page; for the sweeper, never for a request."""
        ...

    async def ping(self) -> str:
        """A one-line description of the store, or raise StoreUnavailable."""
        ...

    async def close(self) -> None: ...
