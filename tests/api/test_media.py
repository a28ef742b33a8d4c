"""Media on the embedded store: upload straight to a signed URL, confirm, download, delete."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.commands.media import CONTENT_TYPES, sweep_dead_uploads
from app.media_routes import CLOSED
from app.stores.objects.headers import INLINE_TYPES, content_disposition
from app.stores.objects.keys import media_key, parse_upload_key
from app.stores.objects.local import LocalObjectStore
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


HTML = b"<html><script>alert(document.cookie)</script></html>"


def _store(app: Starlette) -> LocalObjectStore:
    store = app.state.stores.objects
    assert isinstance(store, LocalObjectStore)
    return store


async def test_a_put_after_completion_is_refused_and_the_ready_bytes_stay(
    tenant: TenantClient, http: AsyncClient, app: Starlette
) -> None:
    """Item 2: an upload URL works only while its asset is PENDING."""
    ticket = await request_upload(tenant, await new_campaign(tenant))
    assert (await upload(http, ticket)).status_code == 200
    ready = (await complete(tenant, ticket["asset"]["id"]))["data"]["completeMediaUpload"]
    again = await upload(http, ticket, HTML.ljust(len(PNG)))  # same size, same declared type
    assert again.status_code == 403
    assert again.json() == {"error": CLOSED}
    served = await http.get(ready["asset"]["url"])
    assert served.content == PNG
    assert await _store(app).head(_upload_key(ticket)) is None  # nothing left to promote


async def test_a_put_after_delete_is_refused_and_writes_nothing(
    tenant: TenantClient, http: AsyncClient, app: Starlette
) -> None:
    """Item 2: a deleted asset's upload URL cannot recreate an object nothing points at."""
    campaign_id = await new_campaign(tenant)
    never_uploaded = await request_upload(tenant, campaign_id)
    completed = await request_upload(tenant, campaign_id, filename="done.png")
    assert (await upload(http, completed)).status_code == 200
    assert not (await complete(tenant, completed["asset"]["id"])).get("errors")
    for ticket in (never_uploaded, completed):
        await tenant.data(DELETE, {"id": ticket["asset"]["id"]})
        assert (await upload(http, ticket)).status_code == 403
    store = _store(app)
    leftovers = [p for p in store.root.rglob("*") if p.is_file() and str(tenant.id) in str(p)]
    assert leftovers == []


async def test_an_upload_landing_after_completion_is_swept_and_pending_ones_are_kept(
    tenant: TenantClient, http: AsyncClient, app: Starlette, engine: AsyncEngine
) -> None:
    """A PUT already past its last check when the asset completes still lands, in the upload
    area, never under the object key; the sweeper removes it and keeps uploads in flight."""
    campaign_id = await new_campaign(tenant)
    done = await request_upload(tenant, campaign_id)
    await upload(http, done)
    ready = (await complete(tenant, done["asset"]["id"]))["data"]["completeMediaUpload"]
    in_flight = await request_upload(tenant, campaign_id, filename="later.png")
    await upload(http, in_flight)
    store = _store(app)
    late = store.root / "late-body"
    late.write_bytes(HTML)
    store.write(_upload_key(done), late, "image/png", "0" * 32)  # the race's outcome

    await sweep_dead_uploads(engine, store)
    assert await store.head(_upload_key(done)) is None
    assert (await http.get(ready["asset"]["url"])).content == PNG
    assert await store.head(_upload_key(in_flight)) is not None
    assert not (await complete(tenant, in_flight["asset"]["id"])).get("errors")


async def test_a_completion_that_promoted_but_did_not_commit_can_be_retried(
    tenant: TenantClient, http: AsyncClient, app: Starlette
) -> None:
    """The upload is gone from the upload key once promoted; a retry takes the promoted one."""
    ticket = await request_upload(tenant, await new_campaign(tenant))
    await upload(http, ticket)
    store = _store(app)
    source = _upload_key(ticket)
    parsed = parse_upload_key(source)
    assert parsed is not None
    target = media_key(parsed.tenant_id, parsed.asset_id, parsed.filename)
    assert await store.promote(source, target, etag=None, content_type="image/png")
    done = await complete(tenant, ticket["asset"]["id"])
    assert done["data"]["completeMediaUpload"]["asset"]["status"] == "READY"
    assert (await http.get(done["data"]["completeMediaUpload"]["asset"]["url"])).content == PNG


async def test_media_answers_carry_nosniff_a_sandbox_and_a_safe_disposition(
    tenant: TenantClient, http: AsyncClient, app: Starlette
) -> None:
    """Item 14: nothing served from /media/ may be sniffed, rendered as a page or run."""
    name = 'café "q" 100%.png'
    ticket = await request_upload(tenant, await new_campaign(tenant), filename=name)
    put = await upload(http, ticket)
    url = (await complete(tenant, ticket["asset"]["id"]))["data"]["completeMediaUpload"]["asset"][
        "url"
    ]
    got, head = await http.get(url), await http.head(url)
    refused = await http.get(url.split("?")[0])
    for response in (put, got, head, refused):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    expected = (
        "inline; filename=\"caf_ _q_ 100_.png\"; filename*=UTF-8''caf%C3%A9%20%22q%22%20100%25.png"
    )
    assert got.headers["content-disposition"] == expected
    assert head.headers["content-disposition"] == expected

    # Anything not a plain image or video, should one ever be stored, is a download.
    store = _store(app)
    key = f"tenants/{tenant.id}/media/{uuid.uuid4()}/page.svg"
    source = store.root / "svg-body"
    source.write_bytes(b"<svg onload='alert(1)'/>")
    store.write(key, source, "image/svg+xml")
    svg = await http.get(store.presign_get(key, 60))
    assert svg.status_code == 200
    assert svg.headers["content-disposition"].startswith('attachment; filename="page.svg"')
    assert svg.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("content_type", "filename", "expected"),
    [
        ("image/png", "a.png", "inline; filename=\"a.png\"; filename*=UTF-8''a.png"),
        ("video/mp4; codecs=x", "v.mp4", "inline; filename=\"v.mp4\"; filename*=UTF-8''v.mp4"),
        ("image/svg+xml", "s.svg", "attachment; filename=\"s.svg\"; filename*=UTF-8''s.svg"),
        ("text/html", "x.html", "attachment; filename=\"x.html\"; filename*=UTF-8''x.html"),
        (None, "x", "attachment; filename=\"x\"; filename*=UTF-8''x"),
        (
            "image/png",
            "日本.png",
            "inline; filename=\"__.png\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.png",
        ),
        (
            "image/png",
            "a\\b;c.png",
            "inline; filename=\"a_b;c.png\"; filename*=UTF-8''a%5Cb%3Bc.png",
        ),
    ],
)
def test_content_disposition_is_inline_only_for_plain_media_and_quotes_safely(
    content_type: str | None, filename: str, expected: str
) -> None:
    assert content_disposition(content_type, filename) == expected


def test_every_uploadable_type_is_served_inline() -> None:
    assert set(CONTENT_TYPES) == INLINE_TYPES


def _upload_key(ticket: dict[str, Any]) -> str:
    path = unquote(urlsplit(ticket["uploadUrl"]).path)
    return path.removeprefix("/media/")
