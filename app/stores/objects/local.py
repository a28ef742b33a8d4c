"""The embedded object store: files under the data directory, served by the app itself.

URLs carry an expiry and an HMAC-SHA256 over (method, key, expiry, content type) with a
secret only the app knows, so they behave like S3's presigned URLs: anyone holding one may
use it until it expires, and changing any part of it breaks the signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from app.stores.objects.port import ObjectInfo, PresignedUpload

# Characters quote(key, safe="/") leaves alone: a key made only of them is its own path.
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*")

# Content types live in a parallel tree, so no filename a client picks can collide with them.
META_DIR = ".meta"
RESERVED = {META_DIR, ".uploads"}


class InvalidKey(ValueError):
    """A key that would resolve outside the storage root."""


class LocalObjectStore:
    name = "local"

    def __init__(self, root: Path, secret: bytes, public_url: str) -> None:
        self.root = root.resolve()
        self.secret = secret
        self.base = public_url.rstrip("/") + "/media/"
        self.root.mkdir(parents=True, exist_ok=True)
        # HMAC with the key already mixed in: each signature copies it (a dashboard page
        # signs hundreds of URLs).
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    # Signing -------------------------------------------------------------------------

    def signature(self, method: str, key: str, expires: int, content_type: str = "") -> str:
        mac = self._keyed.copy()
        mac.update(f"{method}\n{key}\n{expires}\n{content_type}".encode())
        return mac.hexdigest()

    def verify(
        self,
        method: str,
        key: str,
        expires: str,
        signature: str,
        content_type: str = "",
        *,
        now: float | None = None,
    ) -> bool:
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return False
        expected = self.signature(method, key, int(expires), content_type)
        return hmac.compare_digest(expected, signature)

    def _url(
        self, method: str, key: str, expires_in: int, content_type: str = ""
    ) -> tuple[str, int]:
        expires = int(time.time()) + expires_in
        signature = self.signature(method, key, expires, content_type)  # hex: URL-safe
        path = key if _URL_SAFE.fullmatch(key) else quote(key, safe="/")
        return f"{self.base}{path}?expires={expires}&sig={signature}", expires

    def presign_get(self, key: str, expires_in: int) -> str:
        return self._url("GET", key, expires_in)[0]

    def presign_put(self, key: str, content_type: str, expires_in: int) -> PresignedUpload:
        url, expires = self._url("PUT", key, expires_in, content_type)
        return PresignedUpload(
            url=url,
            method="PUT",
            headers={"Content-Type": content_type},
            expires_at=datetime.fromtimestamp(expires, UTC),
        )

    # Files ---------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file for ``key``, refusing anything that would land outside the root."""
        parts = key.split("/")
        if not key or "\x00" in key or parts[0] in RESERVED:
            raise InvalidKey(key)
        if any(part in {"", ".", ".."} for part in parts):
            raise InvalidKey(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(key)
        return path

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / (key + ".json")

    def write(self, key: str, source: Path, content_type: str) -> None:
        """Move an uploaded temp file into place atomically, with its content type beside it."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = self._meta_path(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"content_type": content_type}))
        os.replace(source, path)

    def _head(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        if not path.is_file():
            return None
        meta = self._meta_path(key)
        content_type = json.loads(meta.read_text()).get("content_type") if meta.exists() else None
        return ObjectInfo(size=path.stat().st_size, content_type=content_type)

    async def head(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._head, key)

    def _delete(self, key: str) -> None:
        path = self.path_for(key)
        path.unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def ping(self) -> str:
        usage = await asyncio.to_thread(shutil.disk_usage, self.root)
        return f"local files at {self.root} ({usage.free // 2**20} MiB free)"

    async def close(self) -> None:
        return None
