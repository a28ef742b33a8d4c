"""/media/{key}: the embedded object store's HTTP face, for signed URLs only.

Only requests carrying a valid, unexpired signature for exactly this method and key are
served; the key is resolved inside the storage root or refused, so a crafted path can never
read or write outside it. A PUT is taken only for the upload key of an asset that is still
PENDING, checked before and after the body arrives, so an upload URL dies with its asset's
PENDING state rather than with its signature (docs/decisions/0018). Uploads stream to a
temporary file under a size cap and are moved into place only when complete.

Every answer carries ``X-Content-Type-Options: nosniff`` and a sandboxing
``Content-Security-Policy``, and files carry a ``Content-Disposition``: uploaded bytes are
only checked for size and declared type, so nothing served here may run as the app's origin.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from app.commands.media import upload_is_open
from app.stores.failures import is_store_failure
from app.stores.objects.headers import SECURITY_HEADERS, content_disposition
from app.stores.objects.local import InvalidKey, LocalObjectStore

log = logging.getLogger(__name__)

CLOSED = "this upload URL no longer accepts uploads: its asset is not pending"


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


async def serve_media(request: Request) -> Response:
    store = request.app.state.stores.objects
    if not isinstance(store, LocalObjectStore):
        return _refuse(404, "media is served by the object store, not by this app")
    key = request.path_params["key"]
    method = "GET" if request.method == "HEAD" else request.method
    content_type = request.headers.get("content-type", "") if method == "PUT" else ""
    try:
        path = store.path_for(key)
    except InvalidKey:
        return _refuse(404, "no such object")
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("sig", "")
    if not store.verify(method, key, expires, signature, content_type):
        return _refuse(403, "missing, invalid or expired signature")
    if method == "PUT":
        return await _receive(request, store, key, content_type)
    if not path.is_file():
        return _refuse(404, "no such object")
    info = await store.head(key)
    stored_type = info.content_type if info else None
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": content_disposition(stored_type, key.rsplit("/", 1)[-1]),
    }
    return FileResponse(path, media_type=stored_type, headers=headers)


async def _still_open(engine: AsyncEngine, key: str) -> Response | None:
    """None when a PUT to ``key`` may land; otherwise the refusal to send."""
    try:
        if await upload_is_open(engine, key):
            return None
    except Exception as exc:
        if not is_store_failure(exc):
            raise
        log.warning("cannot check an upload's asset: %s", exc)
        return _refuse(503, "PostgreSQL is unavailable; try again")
    return _refuse(403, CLOSED)


async def _receive(
    request: Request, store: LocalObjectStore, key: str, content_type: str
) -> Response:
    engine: AsyncEngine = request.app.state.stores.engine
    refused = await _still_open(engine, key)
    if refused is not None:
        return refused
    limit = request.app.state.settings.media_max_bytes
    staging = store.root / ".uploads"
    staging.mkdir(exist_ok=True)
    fd, name = tempfile.mkstemp(dir=staging)
    received = 0
    digest = hashlib.md5(usedforsecurity=False)  # S3's ETag for a single PUT, not a secret
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    return _refuse(413, f"object larger than {limit} bytes")
                digest.update(chunk)
                await asyncio.to_thread(out.write, chunk)
        # The asset may have been completed or deleted while the body arrived. A completion
        # that slips in after this check is still safe: it promoted another file, and this
        # one lands in the upload area, where the sweeper finds it dead.
        refused = await _still_open(engine, key)
        if refused is not None:
            return refused
        await asyncio.to_thread(store.write, key, Path(name), content_type, digest.hexdigest())
    finally:
        await asyncio.to_thread(Path(name).unlink, missing_ok=True)
    return Response(status_code=200, headers=SECURITY_HEADERS)
