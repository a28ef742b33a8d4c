"""The media upload flow as a client drives it, shared by the local and the S3 suites."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import TenantClient

REQUEST = """
mutation($input: RequestMediaUploadInput!) {
  requestMediaUpload(input: $input) {
    asset { id status url filename sizeBytes kind contentType }
    uploadUrl uploadMethod uploadHeaders { name value } expiresAt
  }
}
"""
COMPLETE = """
mutation($id: ID!) { completeMediaUpload(input: {id: $id}) { asset { id status url } } }
"""
DELETE = "mutation($id: ID!) { deleteMediaAsset(input: {id: $id}) { deletedId } }"
CREATE_CAMPAIGN = 'mutation { createCampaign(input: {name: "Media"}) { campaign { id } } }'

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


async def new_campaign(tenant: TenantClient) -> str:
    data = await tenant.data(CREATE_CAMPAIGN)
    campaign_id: str = data["createCampaign"]["campaign"]["id"]
    return campaign_id


async def request_upload(
    tenant: TenantClient,
    campaign_id: str,
    *,
    filename: str = "hero shot.png",
    content_type: str = "image/png",
    size: int = len(PNG),
) -> dict[str, Any]:
    data = await tenant.data(
        REQUEST,
        {
            "input": {
                "campaignId": campaign_id,
                "filename": filename,
                "contentType": content_type,
                "sizeBytes": size,
            }
        },
    )
    ticket: dict[str, Any] = data["requestMediaUpload"]
    return ticket


async def upload(
    http: httpx.AsyncClient, ticket: dict[str, Any], body: bytes = PNG
) -> httpx.Response:
    headers = {h["name"]: h["value"] for h in ticket["uploadHeaders"]}
    return await http.request(
        ticket["uploadMethod"], ticket["uploadUrl"], content=body, headers=headers
    )


async def complete(tenant: TenantClient, asset_id: str) -> dict[str, Any]:
    return await tenant.gql(COMPLETE, {"id": asset_id})
