"""requestMediaUpload, completeMediaUpload and deleteMediaAsset."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.commands import media as commands
from app.cost.directives import OBJECT_STORAGE, POSTGRES, Cost, CostStore, ListSize, Store
from app.ids import decode_id
from resolvers.columns import row_of
from resolvers.info import Info
from resolvers.media.types import MediaAsset
from resolvers.permissions import IsEditor


@strawberry.input
class RequestMediaUploadInput:
    campaign_id: strawberry.ID
    filename: str
    content_type: str
    size_bytes: int


@strawberry.input
class CompleteMediaUploadInput:
    id: strawberry.ID


@strawberry.input
class DeleteMediaAssetInput:
    id: strawberry.ID


@strawberry.type(description="A header the upload request must carry, exactly as given.")
class HttpHeader:
    name: str
    value: str


@strawberry.type
class RequestMediaUploadPayload:
    asset: MediaAsset
    upload_url: str = strawberry.field(
        description="Send the file here, straight to storage.",
        directives=[Cost(weight=1), OBJECT_STORAGE],
    )
    upload_method: str
    upload_headers: list[HttpHeader] = strawberry.field(
        directives=[ListSize(assumed_size=10), Store(name=CostStore.COMPUTE)]
    )
    expires_at: datetime | None


@strawberry.type
class CompleteMediaUploadPayload:
    asset: MediaAsset


@strawberry.type
class DeleteMediaAssetPayload:
    deleted_id: strawberry.ID


@strawberry.type
class MediaMutations:
    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def request_media_upload(
        self, info: Info, input: RequestMediaUploadInput
    ) -> RequestMediaUploadPayload | None:
        ctx = info.context
        ticket = await commands.request_upload(
            ctx.stores.engine,
            ctx.stores.objects,
            ctx.require_principal(),
            campaign_id=decode_id(input.campaign_id, "Campaign"),
            filename=input.filename,
            content_type=input.content_type,
            size_bytes=input.size_bytes,
            max_bytes=ctx.settings.media_max_bytes,
            expires_in=ctx.settings.upload_url_ttl_seconds,
        )
        ctx.loaders.media_count_by_campaign.clear(ticket.asset.campaign_id)
        ctx.loaders.media_by_campaign.clear_all()
        return RequestMediaUploadPayload(
            asset=MediaAsset.from_row(ticket.asset),
            upload_url=ticket.upload.url,
            upload_method=ticket.upload.method,
            upload_headers=[HttpHeader(name=k, value=v) for k, v in ticket.upload.headers.items()],
            expires_at=ticket.upload.expires_at,
        )

    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def complete_media_upload(
        self, info: Info, input: CompleteMediaUploadInput
    ) -> CompleteMediaUploadPayload | None:
        ctx = info.context
        row = await commands.complete_upload(
            ctx.stores.engine,
            ctx.stores.objects,
            ctx.require_principal(),
            decode_id(input.id, "MediaAsset"),
        )
        ctx.loaders.media_by_id.clear(row.id).prime(row.id, row_of(row))
        return CompleteMediaUploadPayload(asset=MediaAsset.from_row(row))

    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def delete_media_asset(
        self, info: Info, input: DeleteMediaAssetInput
    ) -> DeleteMediaAssetPayload | None:
        ctx = info.context
        asset_id = decode_id(input.id, "MediaAsset")
        await commands.delete_asset(
            ctx.stores.engine, ctx.stores.objects, ctx.require_principal(), asset_id
        )
        ctx.loaders.media_by_id.clear(asset_id)
        ctx.loaders.media_by_campaign.clear_all()
        ctx.loaders.media_count_by_campaign.clear_all()
        return DeleteMediaAssetPayload(deleted_id=input.id)
