"""GraphQL types of the media domain."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.errors import BadUserInput
from app.ids import encode_id
from resolvers.info import Info
from resolvers.relay import Node

if TYPE_CHECKING:
    from resolvers.campaigns.types import Campaign

CampaignRef = Annotated["Campaign", strawberry.lazy("resolvers.campaigns.types")]


@strawberry.enum
class MediaKind(Enum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


@strawberry.enum
class MediaStatus(Enum):
    PENDING = "PENDING"
    READY = "READY"


@strawberry.type(description="An image or video of a campaign, stored in object storage.")
class MediaAsset(Node):
    pk: strawberry.Private[UUID]
    campaign_pk: strawberry.Private[UUID]
    object_key: strawberry.Private[str]
    kind: MediaKind
    content_type: str
    filename: str
    size_bytes: int = strawberry.field(
        description="Declared at upload request, checked at completion."
    )
    status: MediaStatus
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> MediaAsset:
        return cls(
            id=strawberry.ID(encode_id("MediaAsset", row.id)),
            pk=row.id,
            campaign_pk=row.campaign_id,
            object_key=row.object_key,
            kind=MediaKind(row.kind),
            content_type=row.content_type,
            filename=row.filename,
            size_bytes=row.size_bytes,
            status=MediaStatus(row.status),
            created_at=row.created_at,
        )

    @strawberry.field(
        description="A presigned download URL, signed in memory; null while the upload is "
        "PENDING. `expiresIn` is in seconds, bounded by the server's maximum."
    )
    def url(self, info: Info, expires_in: int | None = None) -> str | None:
        if self.status is not MediaStatus.READY:
            return None
        settings = info.context.settings
        ttl = settings.media_url_ttl_seconds if expires_in is None else expires_in
        if ttl < 1 or ttl > settings.media_url_max_ttl_seconds:
            raise BadUserInput(
                f"'expiresIn' must be between 1 and {settings.media_url_max_ttl_seconds}",
                argument="expiresIn",
            )
        return info.context.stores.objects.presign_get(self.object_key, ttl)

    @strawberry.field(description="The campaign this asset belongs to.")
    async def campaign(self, info: Info) -> CampaignRef | None:
        from resolvers.campaigns.types import Campaign

        row = await info.context.loaders.campaign_by_id.load(self.campaign_pk)
        return Campaign.from_row(row) if row is not None else None
