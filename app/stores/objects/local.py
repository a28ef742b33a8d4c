"""The embedded object store: files under the data directory, served by the app itself.

URLs carry an expiry and an HMAC-SHA256 over (method, key, expiry, content type) with a
secret only the app knows, so they behave like S3's presigned URLs: anyone holding one may
use it until it expires, and changing any part of it breaks the signature. The route that
honours them (``app/media_routes.py``) also refuses an upload once its asset is no longer
PENDING.

Each object keeps its content type and an ETag (the MD5 of its bytes, as S3 reports for a
single PUT) in a metadata file, so completing an upload can check the type and promote
exactly the version it checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator
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
        # Serializes every change to the tree (an upload landing, a promotion, a delete), so
        # a promotion sees one version from its check to its move, and pruning an empty
        # directory never races a write into it.
        self._lock = threading.Lock()

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

    def write(self, key: str, source: Path, content_type: str, etag: str | None = None) -> None:
        """Move an uploaded temp file into place atomically, with its type and ETag beside it."""
        path = self.path_for(key)
        meta = self._meta_path(key)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(json.dumps({"content_type": content_type, "etag": etag}))
            os.replace(source, path)

    def _head(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        if not path.is_file():
            return None
        meta = self._meta_path(key)
        stored = json.loads(meta.read_text()) if meta.exists() else {}
        return ObjectInfo(
            size=path.stat().st_size,
            content_type=stored.get("content_type"),
            etag=stored.get("etag"),
        )

    async def head(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._head, key)

    def _promote(self, source: str, target: str, etag: str | None, content_type: str) -> bool:
        src, dst = self.path_for(source), self.path_for(target)
        with self._lock:
            current = self._head(source)
            if current is None or (etag is not None and current.etag != etag):
                return False
            dst.parent.mkdir(parents=True, exist_ok=True)
            meta = self._meta_path(target)
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(json.dumps({"content_type": content_type, "etag": current.etag}))
            os.replace(src, dst)
            self._forget(source)
        return True

    async def promote(
        self, source: str, target: str, *, etag: str | None, content_type: str
    ) -> bool:
        return await asyncio.to_thread(self._promote, source, target, etag, content_type)

    def _forget(self, key: str) -> None:
        """Drop the metadata of a key whose file is gone, and directories left empty."""
        self._meta_path(key).unlink(missing_ok=True)
        for tree in (self.root, self.root / META_DIR):
            directory = (tree / key).parent
            while directory != tree:
                try:
                    directory.rmdir()  # only ever removes an empty directory
                except OSError:
                    break
                directory = directory.parent

    def _delete(self, key: str) -> None:
        path = self.path_for(key)
        with self._lock:
            path.unlink(missing_ok=True)
            self._forget(key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    def _keys(self, prefix: str) -> list[str]:
        # Only whole directories are walked: every prefix the app lists ends in "/".
        top = self.root / prefix if prefix else self.root
        found = []
        for directory, subdirs, files in os.walk(top):
            if Path(directory) == self.root:
                subdirs[:] = [d for d in subdirs if d not in RESERVED]
            for name in files:
                key = (Path(directory) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        return sorted(found)

    async def list_keys(self, prefix: str) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(self._keys, prefix):
            yield key

    async def ping(self) -> str:
        usage = await asyncio.to_thread(shutil.disk_usage, self.root)
        return f"local files at {self.root} ({usage.free // 2**20} MiB free)"

    async def close(self) -> None:
        return None
