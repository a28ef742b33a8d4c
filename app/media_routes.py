"""/media/{key}: the embedded object store's HTTP face, for signed URLs only.

Only requests carrying a valid, unexpired signature for exactly this method and key are
served; the key is resolved inside the storage root or refused, so a crafted path can never
read or write outside it. Uploads stream to a temporary file under a size cap and are moved
into place only when complete.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from app.stores.objects.local import InvalidKey, LocalObjectStore


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


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
    return FileResponse(path, media_type=info.content_type if info else None)


async def _receive(
    request: Request, store: LocalObjectStore, key: str, content_type: str
) -> Response:
    limit = request.app.state.settings.media_max_bytes
    staging = store.root / ".uploads"
    staging.mkdir(exist_ok=True)
    fd, name = tempfile.mkstemp(dir=staging)
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    return _refuse(413, f"object larger than {limit} bytes")
                await asyncio.to_thread(out.write, chunk)
        await asyncio.to_thread(store.write, key, Path(name), content_type)
    finally:
        await asyncio.to_thread(Path(name).unlink, missing_ok=True)
    return Response(status_code=200)
