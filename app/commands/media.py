"""The media upload flow: request (PENDING row, presigned PUT), complete (HEAD, promote,
then READY), delete (row and tombstones in one transaction, objects after commit, retried
until gone).

The client uploads straight to storage, to the asset's upload key; the server only believes
an upload once the store itself reports an object of the declared size and type there, and
then promotes exactly that version to the asset's object key, which no upload URL can write.
A READY row therefore always points at an object of the declared size and type that only the
app wrote, however long its upload URL stays valid; a deleted row never leaves its objects
behind for good; and an upload that lands after its asset stopped being PENDING is swept
(docs/decisions/0018-upload-urls-die-with-their-asset.md).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.auth import Principal
from app.commands.changes import record_change
from app.commands.owned import owned_row
from app.errors import BadUserInput, ChimeraError, Conflict, NotFound
from app.stores.objects.keys import (
    UPLOADS_PREFIX,
    clean_filename,
    media_key,
    parse_upload_key,
    upload_key,
)
from app.stores.objects.port import ObjectInfo, ObjectStore, PresignedUpload
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
    upload = store.presign_put(
        upload_key(principal.tenant_id, asset_id, name), content_type, expires_in
    )
    return UploadTicket(asset=row, upload=upload)


def upload_key_of(asset: Row[Any]) -> str:
    """Where the asset's presigned PUT lands (never its object key)."""
    return upload_key(asset.tenant_id, asset.id, asset.filename)


async def _asset(engine: AsyncEngine, principal: Principal, asset_id: uuid.UUID) -> Row[Any]:
    async with engine.connect() as conn:
        return await owned_row(
            conn, media_asset, principal, asset_id, what="Media asset", argument="id"
        )


def _check(asset: Row[Any], stored: ObjectInfo | None) -> ObjectInfo:
    """The stored object, if it is what the asset declared; BAD_USER_INPUT with a reason if not."""
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
    return stored


async def complete_upload(
    engine: AsyncEngine, store: ObjectStore, principal: Principal, asset_id: uuid.UUID
) -> Row[Any]:
    """Check the upload (HEAD), promote the checked version to the object key, mark READY.

    The store calls happen outside any transaction; the UPDATE only moves a PENDING row, so
    a concurrent completion or delete is seen rather than overwritten.
    """
    asset = await _asset(engine, principal, asset_id)
    if asset.status == "READY":
        return asset  # completing twice is a retry, not an error
    uploaded = upload_key_of(asset)
    found = await store.head(uploaded)
    if found is not None:
        stored = _check(asset, found)
        promoted = await store.promote(
            uploaded, asset.object_key, etag=stored.etag, content_type=asset.content_type
        )
        if not promoted:  # the upload changed or went between the HEAD and the copy
            current = await _asset(engine, principal, asset_id)
            if current.status == "READY":
                return current
            raise Conflict("The upload changed while it was being completed; complete it again")
    else:
        # An earlier completion may have promoted the upload and then failed to commit. Only
        # the app writes object keys, and only with a checked upload, so what is there (if
        # anything) is checked again and taken.
        stored = _check(asset, await store.head(asset.object_key))
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
        if row is not None:
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
    if row is None:  # completed (or deleted) by a concurrent request meanwhile
        try:
            return await _asset(engine, principal, asset_id)
        except NotFound:
            # Deleted while this completion copied: its delete may have run before the copy
            # landed, so the promoted object is buried here rather than left behind.
            await _bury(engine, store, principal.tenant_id, [asset.object_key, uploaded])
            raise
    try:  # the upload key is dead now; a failure here is the sweeper's to finish
        await store.delete(uploaded)
    except Exception as exc:
        log.warning("could not delete a completed upload, the sweeper will: %s", exc)
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
        # The object and, for an asset deleted before completion, the upload.
        tombstones = await _tombstones(
            conn, principal.tenant_id, [row.object_key, upload_key_of(row)]
        )
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
    for tombstone_id, key in tombstones:
        await _remove(engine, store, tombstone_id, key)
    return asset_id


async def _tombstones(
    conn: AsyncConnection, tenant_id: uuid.UUID, keys: list[str]
) -> list[tuple[int, str]]:
    rows = await conn.execute(
        insert(object_tombstone)
        .values([{"tenant_id": tenant_id, "object_key": key} for key in keys])
        .returning(object_tombstone.c.id, object_tombstone.c.object_key)
    )
    return [(r.id, r.object_key) for r in rows]


async def _bury(
    engine: AsyncEngine, store: ObjectStore, tenant_id: uuid.UUID, keys: list[str]
) -> None:
    """Delete objects no row points at, through tombstones, so a failure is retried."""
    async with engine.begin() as conn:
        tombstones = await _tombstones(conn, tenant_id, keys)
    for tombstone_id, key in tombstones:
        await _remove(engine, store, tombstone_id, key)


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
    """One pass of the media sweeper (``background_sweeper``): retry deletes that failed
    earlier, then remove dead uploads. Returns how many objects are now gone."""
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
    return removed + await sweep_dead_uploads(engine, store)


async def _open_uploads(conn: AsyncConnection, keys: list[str]) -> set[str]:
    """The keys among ``keys`` that are the upload key of an asset still PENDING."""
    ids = {parsed.asset_id for parsed in map(parse_upload_key, keys) if parsed is not None}
    if not ids:
        return set()
    rows = await conn.execute(
        select(media_asset.c.tenant_id, media_asset.c.id, media_asset.c.filename).where(
            media_asset.c.id.in_(ids), media_asset.c.status == "PENDING"
        )
    )
    # The whole key must match (tenant and filename too), not just the asset id in it.
    return {upload_key(r.tenant_id, r.id, r.filename) for r in rows} & set(keys)


async def upload_is_open(engine: AsyncEngine, key: str) -> bool:
    """Whether a PUT to ``key`` may still land: it is the upload key of a PENDING asset.

    The local store's ``/media/{key}`` asks this before and after receiving the body, so an
    upload URL stops working as soon as its asset is completed or deleted, however long its
    signature is valid.
    """
    if parse_upload_key(key) is None:
        return False
    async with engine.connect() as conn:
        return key in await _open_uploads(conn, [key])


SWEEP_BATCH = 1000


async def sweep_dead_uploads(engine: AsyncEngine, store: ObjectStore) -> int:
    """Delete every object under ``uploads/`` that is not the upload of a PENDING asset.

    Upload URLs cannot be revoked on S3: a PUT after completion or delete, while the URL is
    still valid, lands an object that nothing points at and no tombstone names. Only listing
    finds it. The upload area holds only uploads not yet completed (completion and delete
    remove theirs), so listing all of it each pass stays cheap. A row is always committed
    before its upload URL exists, so an object without a PENDING row is dead, never early.
    """
    removed = 0
    batch: list[str] = []

    async def settle(keys: list[str]) -> int:
        async with engine.connect() as conn:
            alive = await _open_uploads(conn, keys)
        gone = 0
        for key in keys:
            if key not in alive:
                await store.delete(key)
                gone += 1
        return gone

    async for key in store.list_keys(UPLOADS_PREFIX):
        batch.append(key)
        if len(batch) >= SWEEP_BATCH:
            removed += await settle(batch)
            batch = []
    if batch:
        removed += await settle(batch)
    return removed
