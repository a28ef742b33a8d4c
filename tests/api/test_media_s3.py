"""Media on S3 (moto's server over HTTP): the same flow, a dashboard whose store calls do not
grow with the page, and an object store outage that loses nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest_asyncio
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.commands.media import sweep_dead_uploads, sweep_tombstones
from app.ids import decode_id
from app.main import create_app
from app.settings import Settings
from app.stores.objects.keys import media_key, parse_upload_key
from app.stores.objects.s3 import S3ObjectStore
from app.stores.postgres.tables import (
    agent,
    campaign,
    campaign_agent,
    media_asset,
    object_tombstone,
)
from tests.api.media_flow import DELETE, PNG, complete, new_campaign, request_upload, upload
from tests.moto import MotoServer
from tests.support import (
    CHARGE,
    SECRET,
    TenantClient,
    count_redis_round_trips,
    count_statements,
    error_codes,
    new_tenant,
)

BUCKET = "chimera-media-test"


def make_bucket(endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@dataclass
class S3App:
    app: Starlette
    http: AsyncClient
    engine: AsyncEngine
    store: S3ObjectStore
    s3: Any


@asynccontextmanager
async def s3_app(
    database_url: str, redis_url: str, pgvector_url: str, endpoint: str, data: Path
) -> AsyncIterator[S3App]:
    s3 = make_bucket(endpoint)
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        auth_secret=SECRET,
        data_dir=data,
        CHIMERA_OBJECT_STORE="s3",
        S3_ENDPOINT=endpoint,
        S3_BUCKET=BUCKET,
        S3_ACCESS_KEY_ID="testing",
        S3_SECRET_ACCESS_KEY="testing",
        pgvector_url=pgvector_url,
        indexer_enabled=False,
        relay_enabled=False,
        store_timeout_seconds=2.0,
    )
    app = create_app(settings)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        store = app.state.stores.objects
        assert isinstance(store, S3ObjectStore)
        yield S3App(app, http, app.state.stores.engine, store, s3)


@pytest_asyncio.fixture
async def on_s3(
    database_url: str, redis_url: str, pgvector_url: str, moto_endpoint: str, tmp_path: Path
) -> AsyncIterator[S3App]:
    async with s3_app(database_url, redis_url, pgvector_url, moto_endpoint, tmp_path) as served:
        yield served


@pytest_asyncio.fixture
async def direct() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, as a browser would use for presigned URLs."""
    async with httpx.AsyncClient() as client:
        yield client


async def test_upload_goes_straight_to_s3_and_delete_removes_the_object(
    on_s3: S3App, direct: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(on_s3.engine, on_s3.http)
    campaign_id = await new_campaign(tenant)
    ticket = await request_upload(tenant, campaign_id, filename="café façade ☕.png")
    assert ticket["uploadUrl"].startswith(on_s3.store.endpoint)
    assert (await upload(direct, ticket)).status_code == 200
    ready = (await complete(tenant, ticket["asset"]["id"]))["data"]["completeMediaUpload"]["asset"]
    assert ready["status"] == "READY"
    fetched = await direct.get(ready["url"])
    assert fetched.status_code == 200
    assert fetched.content == PNG
    key = f"tenants/{tenant.id}/media/"
    listed = on_s3.s3.list_objects_v2(Bucket=BUCKET, Prefix=key)
    assert [o["Key"].rsplit("/", 1)[-1] for o in listed["Contents"]] == ["café façade ☕.png"]
    await tenant.data(DELETE, {"id": ticket["asset"]["id"]})
    assert on_s3.s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount") == 0


async def test_an_object_of_another_type_than_declared_stays_pending(on_s3: S3App) -> None:
    tenant = await new_tenant(on_s3.engine, on_s3.http)
    ticket = await request_upload(tenant, await new_campaign(tenant))
    # Written behind the app's back with another type, as a misbehaving client could.
    on_s3.s3.put_object(Bucket=BUCKET, Key=_key_of(ticket), Body=PNG, ContentType="image/gif")
    body = await complete(tenant, ticket["asset"]["id"])
    assert body["errors"][0]["extensions"]["reason"] == "TYPE_MISMATCH"


def _key_of(ticket: dict[str, Any]) -> str:
    """The upload key the ticket's URL writes to."""
    path = httpx.URL(ticket["uploadUrl"]).path
    return path.split(f"/{BUCKET}/", 1)[1]


def _object_key_of(ticket: dict[str, Any]) -> str:
    """The key a READY asset is served from, which no upload URL names."""
    parsed = parse_upload_key(_key_of(ticket))
    assert parsed is not None
    return media_key(parsed.tenant_id, parsed.asset_id, parsed.filename)


DASHBOARD = """query($n: Int!) { campaigns(first: $n) { edges { node {
  name engagement { clicks } agents { edges { node { name activeTasks } } }
  media { edges { node { url } } } } } } }"""


async def test_dashboard_store_calls_do_not_grow_with_the_page_and_urls_cost_no_s3_call(
    on_s3: S3App,
) -> None:
    tenant = await new_tenant(on_s3.engine, on_s3.http)
    campaigns = [uuid.uuid4() for _ in range(50)]
    agents = [uuid.uuid4() for _ in range(10)]
    async with on_s3.engine.begin() as conn:
        await conn.execute(
            insert(campaign),
            [{"id": c, "tenant_id": tenant.id, "name": f"c{i}"} for i, c in enumerate(campaigns)],
        )
        await conn.execute(
            insert(agent),
            [{"id": a, "tenant_id": tenant.id, "name": f"a{i}"} for i, a in enumerate(agents)],
        )
        await conn.execute(
            insert(campaign_agent),
            [
                {"tenant_id": tenant.id, "campaign_id": c, "agent_id": agents[i % 10]}
                for i, c in enumerate(campaigns)
            ],
        )
        await conn.execute(
            insert(media_asset),
            [
                {
                    "id": uuid.uuid4(),
                    "tenant_id": tenant.id,
                    "campaign_id": c,
                    "object_key": f"tenants/{tenant.id}/media/{uuid.uuid4()}/p{k}.png",
                    "kind": "IMAGE",
                    "content_type": "image/png",
                    "filename": f"p{k}.png",
                    "size_bytes": 1,
                    "status": "READY",
                }
                for c in campaigns
                for k in range(2)
            ],
        )
    s3_calls: list[str] = []

    def on_send(**kwargs: Any) -> None:
        s3_calls.append(str(kwargs.get("request")))

    on_s3.store.client.meta.events.register("before-send", on_send)
    counts = {}
    for n in (5, 50):
        s3_calls.clear()
        with count_statements(on_s3.engine) as sql, count_redis_round_trips() as redis:
            data = await tenant.data(DASHBOARD, {"n": n})
        edges = data["campaigns"]["edges"]
        assert len(edges) == n
        urls = [m["node"]["url"] for e in edges for m in e["node"]["media"]["edges"]]
        assert len(urls) == 2 * n
        assert all(u.startswith(on_s3.store.endpoint) and "X-Amz-Signature=" in u for u in urls)
        counts[n] = (sql.count, redis.count, len(s3_calls))
    on_s3.store.client.meta.events.unregister("before-send", on_send)
    assert counts[5] == counts[50]
    assert counts[50][2] == 0, "presigning must not call S3"
    # campaigns, agents per campaign, media per campaign; engagement and active tasks.
    assert counts[50][:2] == (3, 2 + CHARGE)


async def test_object_store_outage_keeps_pending_uploads_and_sweeps_deletes_later(
    database_url: str,
    redis_url: str,
    pgvector_url: str,
    tmp_path: Path,
    direct: httpx.AsyncClient,
) -> None:
    server = MotoServer()
    server.start()
    try:
        async with s3_app(database_url, redis_url, pgvector_url, server.url, tmp_path) as served:
            tenant: TenantClient = await new_tenant(served.engine, served.http)
            campaign_id = await new_campaign(tenant)
            ready = await request_upload(tenant, campaign_id)
            await upload(direct, ready)
            await complete(tenant, ready["asset"]["id"])
            pending = await request_upload(tenant, campaign_id)
            await upload(direct, pending)

            server.stop()
            # Presigning needs no network, so new uploads can still be requested.
            assert (await request_upload(tenant, campaign_id))["uploadUrl"]
            failed = await complete(tenant, pending["asset"]["id"])
            assert error_codes(failed) == ["STORE_UNAVAILABLE"]
            status = await tenant.data(
                "query($id: ID!) { node(id: $id) { ... on MediaAsset { status } } }",
                {"id": pending["asset"]["id"]},
            )
            assert status["node"]["status"] == "PENDING"
            # The row goes at once; the object delete failed and waits as a tombstone.
            await tenant.data(DELETE, {"id": ready["asset"]["id"]})
            async with served.engine.connect() as conn:
                left = list(
                    await conn.execute(
                        select(object_tombstone).where(object_tombstone.c.tenant_id == tenant.id)
                    )
                )
            # Both keys: the object, and the upload key a late PUT may still have written.
            assert sorted((t.object_key, t.attempts) for t in left) == [
                (_object_key_of(ready), 1),
                (_key_of(ready), 1),
            ]

            server.start()  # moto restarts empty: recreate the bucket and the orphan
            make_bucket(server.url).put_object(Bucket=BUCKET, Key=_object_key_of(ready), Body=PNG)
            assert await sweep_tombstones(served.engine, served.store) == 2
            async with served.engine.connect() as conn:
                assert (
                    list(
                        await conn.execute(
                            select(object_tombstone).where(
                                object_tombstone.c.tenant_id == tenant.id
                            )
                        )
                    )
                    == []
                )
            listed = served.s3.list_objects_v2(Bucket=BUCKET, Prefix=_object_key_of(ready))
            assert listed.get("KeyCount") == 0
    finally:
        server.stop()


HTML = b"<html><script>alert(document.cookie)</script></html>"


async def _object_key(engine: AsyncEngine, ticket: dict[str, Any]) -> str:
    async with engine.connect() as conn:
        key: str = (
            await conn.execute(
                select(media_asset.c.object_key).where(
                    media_asset.c.id == decode_id(ticket["asset"]["id"], "MediaAsset")
                )
            )
        ).scalar_one()
    return key


def _keys_of(s3: Any, tenant: TenantClient) -> list[str]:
    """Every key of the tenant's, wherever it lives in the bucket."""
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return sorted(o["Key"] for o in listed if str(tenant.id) in o["Key"])


async def test_a_put_after_completion_cannot_replace_what_the_ready_asset_serves(
    on_s3: S3App, direct: httpx.AsyncClient
) -> None:
    """Item 2 on S3: the presigned PUT stays valid (S3 cannot revoke it), but it only ever
    names the upload key; the READY asset is served from a copy only the app wrote."""
    tenant = await new_tenant(on_s3.engine, on_s3.http)
    ticket = await request_upload(tenant, await new_campaign(tenant))
    await upload(direct, ticket)
    ready = (await complete(tenant, ticket["asset"]["id"]))["data"]["completeMediaUpload"]["asset"]

    late = await upload(direct, ticket, HTML.ljust(len(PNG)))  # same size, same signed type
    assert late.status_code == 200  # S3 (and moto) honour a live signature
    served = await direct.get(ready["url"])
    assert served.content == PNG
    assert served.headers["content-type"] == "image/png"
    assert served.headers["content-disposition"].startswith('inline; filename="hero shot.png"')
    stored = on_s3.s3.head_object(Bucket=BUCKET, Key=await _object_key(on_s3.engine, ticket))
    assert stored["ContentLength"] == len(PNG)

    await sweep_dead_uploads(on_s3.engine, on_s3.store)
    assert _keys_of(on_s3.s3, tenant) == [await _object_key(on_s3.engine, ticket)]


async def test_a_put_after_delete_leaves_no_object_once_swept(
    on_s3: S3App, direct: httpx.AsyncClient
) -> None:
    """Item 2 on S3: what a deleted asset's live upload URL writes is found and removed."""
    tenant = await new_tenant(on_s3.engine, on_s3.http)
    campaign_id = await new_campaign(tenant)
    completed = await request_upload(tenant, campaign_id)
    await upload(direct, completed)
    assert not (await complete(tenant, completed["asset"]["id"])).get("errors")
    pending = await request_upload(tenant, campaign_id, filename="pending.png")
    await upload(direct, pending)
    for ticket in (completed, pending):
        await tenant.data(DELETE, {"id": ticket["asset"]["id"]})
    assert _keys_of(on_s3.s3, tenant) == []  # the object, and the pending asset's upload
    for ticket in (completed, pending):
        assert (await upload(direct, ticket, HTML)).status_code == 200
    assert _keys_of(on_s3.s3, tenant) == sorted([_key_of(completed), _key_of(pending)])

    assert await sweep_tombstones(on_s3.engine, on_s3.store) >= 2
    assert _keys_of(on_s3.s3, tenant) == []


async def test_the_sweeper_keeps_uploads_whose_asset_is_still_pending(
    on_s3: S3App, direct: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(on_s3.engine, on_s3.http)
    ticket = await request_upload(tenant, await new_campaign(tenant))
    await upload(direct, ticket)
    await sweep_dead_uploads(on_s3.engine, on_s3.store)
    assert _keys_of(on_s3.s3, tenant) == [_key_of(ticket)]
    done = await complete(tenant, ticket["asset"]["id"])
    assert done["data"]["completeMediaUpload"]["asset"]["status"] == "READY"


async def test_completion_copies_only_the_checked_version_and_drops_the_upload(
    on_s3: S3App, direct: httpx.AsyncClient
) -> None:
    """The copy is conditional on the ETag the HEAD saw, so a PUT racing the completion is
    never what gets promoted (moto ignores the condition: this checks the app sends it)."""
    tenant = await new_tenant(on_s3.engine, on_s3.http)
    ticket = await request_upload(tenant, await new_campaign(tenant))
    await upload(direct, ticket)
    etag = on_s3.s3.head_object(Bucket=BUCKET, Key=_key_of(ticket))["ETag"]
    sent: list[Any] = []

    def on_send(**kwargs: Any) -> None:
        sent.append(kwargs["request"])

    on_s3.store.client.meta.events.register("before-send.s3.CopyObject", on_send)
    try:
        assert not (await complete(tenant, ticket["asset"]["id"])).get("errors")
    finally:
        on_s3.store.client.meta.events.unregister("before-send.s3.CopyObject", on_send)
    (copy,) = sent
    headers = {
        k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in copy.headers.items()
    }
    assert headers["x-amz-copy-source-if-match"] == etag  # quoted, as S3 sends ETags
    assert headers["x-amz-metadata-directive"] == "REPLACE"
    assert _keys_of(on_s3.s3, tenant) == [await _object_key(on_s3.engine, ticket)]
    async with on_s3.engine.connect() as conn:
        checksum = (
            await conn.execute(
                select(media_asset.c.checksum).where(
                    media_asset.c.id == decode_id(ticket["asset"]["id"], "MediaAsset")
                )
            )
        ).scalar_one()
    assert checksum == etag.strip('"')
