"""GraphQL types of the media domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.cost.directives import OBJECT_STORAGE, Cost, CostStore, Store
from app.errors import BadUserInput
from app.ids import encode_id
from resolvers.batching import batched, built, one, settle
from resolvers.columns import Row, column, row_of
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


async def campaigns_of_media(assets: Sequence[MediaAsset], info: Info) -> list[Any]:
    from resolvers.campaigns.types import Campaign

    load = info.context.loaders.campaign_by_id.load
    return built(await settle([load(asset.campaign_pk) for asset in assets]), Campaign.from_row)


def media_asset_id(pk: UUID) -> str:
    return encode_id("MediaAsset", pk)


@strawberry.type(
    description="An image or video of a campaign, stored in object storage.",
    directives=[Store(name=CostStore.POSTGRES)],
)
class MediaAsset(Node):
    __slots__ = ("row",)
    row: strawberry.Private[Row]
    id: strawberry.ID = column("id", media_asset_id)
    kind: MediaKind = column("kind", MediaKind)
    content_type: str = column("content_type")
    filename: str = column("filename")
    size_bytes: int = column(
        "size_bytes", description="Declared at upload request, checked at completion."
    )
    status: MediaStatus = column("status", MediaStatus)
    created_at: datetime = column("created_at")

    @classmethod
    def from_row(cls, row: Any) -> MediaAsset:
        return cls(row=row_of(row))

    @property
    def pk(self) -> UUID:
        pk: UUID = self.row["id"]
        return pk

    @property
    def campaign_pk(self) -> UUID:
        pk: UUID = self.row["campaign_id"]
        return pk

    @property
    def object_key(self) -> str:
        key: str = self.row["object_key"]
        return key

    @strawberry.field(
        description="A presigned download URL, signed in memory; null while the upload is "
        "PENDING. `expiresIn` is in seconds, bounded by the server's maximum.",
        directives=[Cost(weight=1), OBJECT_STORAGE],
    )
    def url(self, info: Info, expires_in: int | None = None) -> str | None:
        if self.row["status"] != MediaStatus.READY.value:
            return None
        settings = info.context.settings
        ttl = settings.media_url_ttl_seconds if expires_in is None else expires_in
        if ttl < 1 or ttl > settings.media_url_max_ttl_seconds:
            raise BadUserInput(
                f"'expiresIn' must be between 1 and {settings.media_url_max_ttl_seconds}",
                argument="expiresIn",
            )
        return info.context.stores.objects.presign_get(self.object_key, ttl)

    @strawberry.field(
        description="The campaign this asset belongs to.", metadata=batched(campaigns_of_media)
    )
    async def campaign(self, info: Info) -> CampaignRef | None:
        campaign: CampaignRef | None = await one(campaigns_of_media, self, info)
        return campaign
