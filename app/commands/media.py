"""The media upload flow: request (PENDING row, presigned PUT), complete (HEAD, then READY),
delete (row and tombstone in one transaction, object after commit, retried until gone).

The client uploads straight to storage; the server only believes an upload once the store
itself reports an object of the declared size and type. A READY row therefore always points
at an object that exists, and a deleted row never leaves its object behind for good.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.commands.changes import record_change
from app.commands.owned import owned_row
from app.errors import BadUserInput, ChimeraError, Conflict, NotFound
from app.stores.objects.keys import clean_filename, media_key
from app.stores.objects.port import ObjectStore, PresignedUpload
from app.stores.postgres.tables import campaign, media_asset, object_tombstone

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "image/jpeg": "IMAGE",
    "image/png": "IMAGE",
    "image/gif": "IMAGE",
    "image/webp": "IMAGE",
    "video/mp4": "VIDEO",
    "video/webm": "VIDEO",
    "video/quicktime": "VIDEO",
}


@dataclass(frozen=True)
class UploadTicket:
    asset: Row[Any]
    upload: PresignedUpload


async def request_upload(
    engine: AsyncEngine,
    store: ObjectStore,
    principal: Principal,
    *,
    campaign_id: uuid.UUID,
    filename: str,
    content_type: str,
    size_bytes: int,
    max_bytes: int,
    expires_in: int,
) -> UploadTicket:
    content_type = content_type.strip().lower()
    kind = CONTENT_TYPES.get(content_type)
    if kind is None:
        raise BadUserInput(
            f"Content type {content_type!r} is not allowed",
            field="contentType",
            allowed=sorted(CONTENT_TYPES),
        )
    if size_bytes < 1 or size_bytes > max_bytes:
        raise BadUserInput(f"'sizeBytes' must be between 1 and {max_bytes}", field="sizeBytes")
    name = clean_filename(filename)
    asset_id = uuid.uuid4()
    key = media_key(principal.tenant_id, asset_id, name)
    async with engine.begin() as conn:
        owner = await owned_row(
            conn, campaign, principal, campaign_id, what="Campaign", argument="campaignId"
        )
        if owner.status == "ARCHIVED":
            raise Conflict("An archived campaign takes no new media")
        row = (
            await conn.execute(
                insert(media_asset)
                .values(
                    id=asset_id,
                    tenant_id=principal.tenant_id,
                    campaign_id=campaign_id,
                    object_key=key,
                    kind=kind,
                    content_type=content_type,
                    filename=name,
                    size_bytes=size_bytes,
                    status="PENDING",
                )
                .returning(*media_asset.c)
            )
        ).one()
        await record_change(
            conn,
            principal,
            action="media.request_upload",
            entity_type="media_asset",
            entity_id=asset_id,
            before=None,
            after=row,
            event_type="MEDIA_REQUESTED",
            payload={"campaignId": campaign_id, "assetId": asset_id},
        )
    return UploadTicket(asset=row, upload=store.presign_put(key, content_type, expires_in))


async def _asset(engine: AsyncEngine, principal: Principal, asset_id: uuid.UUID) -> Row[Any]:
    async with engine.connect() as conn:
        return await owned_row(
            conn, media_asset, principal, asset_id, what="Media asset", argument="id"
        )


async def complete_upload(
    engine: AsyncEngine, store: ObjectStore, principal: Principal, asset_id: uuid.UUID
) -> Row[Any]:
    asset = await _asset(engine, principal, asset_id)
    if asset.status == "READY":
        return asset  # completing twice is a retry, not an error
    stored = await store.head(asset.object_key)
    if stored is None:
        raise BadUserInput("Nothing has been uploaded for this asset yet", reason="OBJECT_MISSING")
    if stored.size != asset.size_bytes:
        raise BadUserInput(
            f"The uploaded object has {stored.size} bytes, not the declared {asset.size_bytes}",
            reason="SIZE_MISMATCH",
        )
    stored_type = (stored.content_type or "").split(";")[0].strip().lower()
    if stored_type != asset.content_type:
        raise BadUserInput(
            f"The uploaded object is {stored_type or 'untyped'}, not {asset.content_type}",
            reason="TYPE_MISMATCH",
        )
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                update(media_asset)
                .where(
                    media_asset.c.tenant_id == principal.tenant_id,
                    media_asset.c.id == asset_id,
                    media_asset.c.status == "PENDING",
                )
                .values(status="READY", checksum=stored.etag, updated_at=func.now())
                .returning(*media_asset.c)
            )
        ).first()
        if row is None:  # completed (or deleted) by a concurrent request meanwhile
            return await _asset(engine, principal, asset_id)
        await record_change(
            conn,
            principal,
            action="media.complete_upload",
            entity_type="media_asset",
            entity_id=asset_id,
            before=asset,
            after=row,
            event_type="MEDIA_READY",
            aggregate_type="campaign",
            aggregate_id=row.campaign_id,
            payload={"campaignId": row.campaign_id, "assetId": asset_id},
        )
    return row


async def delete_asset(
    engine: AsyncEngine, store: ObjectStore, principal: Principal, asset_id: uuid.UUID
) -> uuid.UUID:
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                delete(media_asset)
                .where(media_asset.c.tenant_id == principal.tenant_id, media_asset.c.id == asset_id)
                .returning(*media_asset.c)
            )
        ).first()
        if row is None:
            raise NotFound("Media asset not found", argument="id")
        tombstone_id = (
            await conn.execute(
                insert(object_tombstone)
                .values(tenant_id=principal.tenant_id, object_key=row.object_key)
                .returning(object_tombstone.c.id)
            )
        ).scalar_one()
        await record_change(
            conn,
            principal,
            action="media.delete",
            entity_type="media_asset",
            entity_id=asset_id,
            before=row,
            after=None,
            event_type="MEDIA_DELETED",
            aggregate_type="campaign",
            aggregate_id=row.campaign_id,
            payload={"campaignId": row.campaign_id, "assetId": asset_id},
        )
    await _remove(engine, store, tombstone_id, row.object_key)
    return asset_id


async def _remove(engine: AsyncEngine, store: ObjectStore, tombstone_id: int, key: str) -> bool:
    """Delete one object; drop its tombstone on success, count the attempt otherwise."""
    try:
        await store.delete(key)
    except Exception as exc:  # any failure leaves the tombstone for the next sweep
        message = exc.message if isinstance(exc, ChimeraError) else f"{type(exc).__name__}: {exc}"
        log.warning("object delete failed, will retry: %s", message)
        async with engine.begin() as conn:
            await conn.execute(
                update(object_tombstone)
                .where(object_tombstone.c.id == tombstone_id)
                .values(attempts=object_tombstone.c.attempts + 1, last_error=message[:500])
            )
        return False
    async with engine.begin() as conn:
        await conn.execute(delete(object_tombstone).where(object_tombstone.c.id == tombstone_id))
    return True


async def sweep_tombstones(engine: AsyncEngine, store: ObjectStore, limit: int = 100) -> int:
    """Retry deletes that failed earlier; returns how many objects are now gone."""
    async with engine.connect() as conn:
        pending = list(
            await conn.execute(
                select(object_tombstone.c.id, object_tombstone.c.object_key)
                # Fewest attempts first: a few objects that can never be deleted must not
                # starve the rest of the queue.
                .order_by(object_tombstone.c.attempts, object_tombstone.c.id)
                .limit(limit)
            )
        )
    removed = 0
    for tombstone in pending:
        removed += await _remove(engine, store, tombstone.id, tombstone.object_key)
    return removed
