"""Choosing the object store from settings: the composition root's one decision about media."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.settings import ObjectStoreKind, Settings
from app.stores.objects.local import LocalObjectStore
from app.stores.objects.port import ObjectStore
from app.stores.objects.s3 import open_s3_store


@asynccontextmanager
async def open_object_store(settings: Settings, auth_secret: str) -> AsyncIterator[ObjectStore]:
    if settings.object_store_kind is ObjectStoreKind.S3:
        async with open_s3_store(settings) as store:
            yield store
        return
    # A key of its own, derived from the auth secret, so media URLs and tokens never share one.
    media_secret = hashlib.sha256(b"chimera-media-url:" + auth_secret.encode()).digest()
    yield LocalObjectStore(settings.resolved_data_dir / "media", media_secret, settings.public_url)
