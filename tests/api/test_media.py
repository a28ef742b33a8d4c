"""Media on the embedded store: upload straight to a signed URL, confirm, download, delete."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.stores.postgres.tables import media_asset, outbox
from tests.api.media_flow import DELETE, PNG, complete, new_campaign, request_upload, upload
from tests.support import TenantClient, error_codes


async def test_upload_complete_download_and_delete(
    tenant: TenantClient, http: AsyncClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    ticket = await request_upload(tenant, campaign_id)
    asset = ticket["asset"]
    assert asset["status"] == "PENDING"
    assert asset["url"] is None
    assert asset["kind"] == "IMAGE"
    assert ticket["uploadMethod"] == "PUT"
    assert {"name": "Content-Type", "value": "image/png"} in ticket["uploadHeaders"]

    assert (await upload(http, ticket)).status_code == 200
    done = await complete(tenant, asset["id"])
    assert not done.get("errors"), done
    ready = done["data"]["completeMediaUpload"]["asset"]
    assert ready["status"] == "READY"
    download = await http.get(ready["url"])
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"

    listed = await tenant.data(
        "query($id: ID!) { campaign(id: $id) { media { totalCount edges { node { id status "
        "campaign { id } } } } } }",
        {"id": campaign_id},
    )
    media = listed["campaign"]["media"]
    assert media["totalCount"] == 1
    assert media["edges"][0]["node"] == {
        "id": asset["id"],
        "status": "READY",
        "campaign": {"id": campaign_id},
    }

    deleted = await tenant.data(DELETE, {"id": asset["id"]})
    assert deleted["deleteMediaAsset"]["deletedId"] == asset["id"]
    assert (await http.get(ready["url"])).status_code == 404
    gone = await tenant.data("query($id: ID!) { node(id: $id) { id } }", {"id": asset["id"]})
    assert gone["node"] is None
    async with engine.connect() as conn:
        events = [
            r.event_type
            for r in await conn.execute(
                select(outbox.c.event_type)
                .where(outbox.c.tenant_id == tenant.id)
                .order_by(outbox.c.id)
            )
        ]
    assert events[-3:] == ["MEDIA_REQUESTED", "MEDIA_READY", "MEDIA_DELETED"]


async def test_completing_before_upload_or_with_a_wrong_size_leaves_the_asset_pending(
    tenant: TenantClient, http: AsyncClient
) -> None:
    campaign_id = await new_campaign(tenant)
    ticket = await request_upload(tenant, campaign_id)
    early = await complete(tenant, ticket["asset"]["id"])
    assert error_codes(early) == ["BAD_USER_INPUT"]
    assert early["errors"][0]["extensions"]["reason"] == "OBJECT_MISSING"
    assert (await upload(http, ticket, PNG[:-1])).status_code == 200
    short = await complete(tenant, ticket["asset"]["id"])
    assert short["errors"][0]["extensions"]["reason"] == "SIZE_MISMATCH"
    still = await tenant.data(
        "query($id: ID!) { node(id: $id) { ... on MediaAsset { status url } } }",
        {"id": ticket["asset"]["id"]},
    )
    assert still["node"] == {"status": "PENDING", "url": None}
    assert (await upload(http, ticket)).status_code == 200
    assert not (await complete(tenant, ticket["asset"]["id"])).get("errors")
    again = await complete(tenant, ticket["asset"]["id"])  # a retried completion is fine
    assert again["data"]["completeMediaUpload"]["asset"]["status"] == "READY"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("contentType", "application/x-sh"),
        ("contentType", "text/html"),
        ("sizeBytes", 0),
        ("sizeBytes", 10**12),
        ("filename", "../../etc/passwd"),
        ("filename", "a/b.png"),
        ("filename", ""),
        ("filename", "x" * 300),
        ("filename", "nul\x00.png"),
    ],
)
async def test_bad_upload_requests_are_refused_and_store_nothing(
    tenant: TenantClient, engine: AsyncEngine, field: str, value: object
) -> None:
    campaign_id = await new_campaign(tenant)
    values = {
        "campaignId": campaign_id,
        "filename": "ok.png",
        "contentType": "image/png",
        "sizeBytes": 10,
        field: value,
    }
    body = await tenant.gql(
        "mutation($input: RequestMediaUploadInput!) { requestMediaUpload(input: $input) "
        "{ uploadUrl } }",
        {"input": values},
    )
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                select(func.count())
                .select_from(media_asset)
                .where(media_asset.c.tenant_id == tenant.id)
            )
        ).scalar_one()
    assert count == 0


async def test_another_tenants_campaign_takes_no_uploads(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    campaign_id = await new_campaign(tenant)
    body = await other_tenant.gql(
        'mutation($c: ID!) { requestMediaUpload(input: {campaignId: $c, filename: "x.png", '
        'contentType: "image/png", sizeBytes: 5}) { uploadUrl } }',
        {"c": campaign_id},
    )
    assert error_codes(body) == ["NOT_FOUND"]


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


async def test_signed_urls_refuse_tampering_expiry_other_keys_and_traversal(
    tenant: TenantClient, http: AsyncClient
) -> None:
    campaign_id = await new_campaign(tenant)
    ticket = await request_upload(tenant, campaign_id)
    await upload(http, ticket)
    url = (await complete(tenant, ticket["asset"]["id"]))["data"]["completeMediaUpload"]["asset"][
        "url"
    ]
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    tampered = _with_query(url, sig=("0" if sig[0] != "0" else "1") + sig[1:])
    assert (await http.get(tampered)).status_code == 403
    expired = _with_query(url, expires=str(int(time.time()) - 1))
    assert (await http.get(expired)).status_code == 403
    assert (await http.get(url.split("?")[0])).status_code == 403
    other_key = url.replace("hero%20shot.png", "other.png")
    assert (await http.get(other_key)).status_code == 403
    # Uploading with a GET signature, or with another content type than signed, is refused.
    put_with_get_sig = await http.put(url, content=b"x", headers={"Content-Type": "image/png"})
    assert put_with_get_sig.status_code == 403
    wrong_type = await http.put(
        ticket["uploadUrl"], content=PNG, headers={"Content-Type": "image/gif"}
    )
    assert wrong_type.status_code == 403
    query = urlsplit(url).query
    for path in (
        "/media/../auth_secret",
        "/media/%2e%2e/auth_secret",
        "/media//etc/passwd",
        "/media/tenants/../../auth_secret",
        "/media/a/..%2f..%2fauth_secret",
    ):
        response = await http.get(f"{path}?{query}")
        assert response.status_code in (403, 404), path
        assert b"auth_secret" not in response.content


async def test_url_expiry_is_bounded(tenant: TenantClient, http: AsyncClient) -> None:
    campaign_id = await new_campaign(tenant)
    ticket = await request_upload(tenant, campaign_id)
    await upload(http, ticket)
    await complete(tenant, ticket["asset"]["id"])
    query = (
        "query($id: ID!, $e: Int) { node(id: $id) { ... on MediaAsset { url(expiresIn: $e) } } }"
    )
    for bad in (0, -1, 86401):
        body = await tenant.gql(query, {"id": ticket["asset"]["id"], "e": bad})
        assert error_codes(body) == ["BAD_USER_INPUT"]
    good = await tenant.data(query, {"id": ticket["asset"]["id"], "e": 60})
    expires = int(parse_qs(urlsplit(good["node"]["url"]).query)["expires"][0])
    assert 0 < expires - time.time() <= 61
