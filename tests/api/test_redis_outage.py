"""With Redis down, everything that does not need Redis still answers, quickly, and the
counter fields come back null with STORE_UNAVAILABLE at their paths; it heals by itself."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from app.settings import Settings
from app.stores.postgres.tables import outbox
from app.stores.redis.embedded import EmbeddedRedis, start_embedded_redis
from tests.support import SECRET, TenantClient, error_codes, new_tenant

STORE_TIMEOUT = 1.0
DASHBOARD = """{ campaigns { edges { node { name engagement { clicks } agents { edges { node {
  name activeTasks } } } } } } }"""


class Outage:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: EmbeddedRedis = start_embedded_redis(data_dir)
        self.port = self.server.port

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        self.server = start_embedded_redis(self.data_dir, port=self.port)


@pytest_asyncio.fixture
async def outage(tmp_path: Path) -> AsyncIterator[Outage]:
    handle = Outage(tmp_path / "redis")
    yield handle
    handle.stop()


@pytest_asyncio.fixture
async def served(
    database_url: str, pgvector_url: str, outage: Outage, tmp_path: Path
) -> AsyncIterator[tuple[AsyncClient, AsyncEngine]]:
    settings = Settings(
        database_url=database_url,
        redis_url=f"redis://127.0.0.1:{outage.port}/0",
        auth_secret=SECRET,
        data_dir=tmp_path / "data",
        store_timeout_seconds=STORE_TIMEOUT,
        pgvector_url=pgvector_url,
        indexer_enabled=False,
        relay_enabled=False,
    )
    app = create_app(settings)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http, app.state.stores.engine


async def test_redis_outage_nulls_only_counter_fields_and_recovers(
    served: tuple[AsyncClient, AsyncEngine], outage: Outage
) -> None:
    client, engine = served
    tenant: TenantClient = await new_tenant(engine, client)
    created = await tenant.data(
        'mutation { createCampaign(input: {name: "Up"}) { campaign { id } } }'
    )
    campaign_id = created["createCampaign"]["campaign"]["id"]
    agent = await tenant.data('mutation { createAgent(input: {name: "Ann"}) { agent { id } } }')
    await tenant.data(
        "mutation($c: ID!, $a: [ID!]!) { assignAgents(input: {campaignId: $c, "
        "agentIds: $a}) { campaign { id } } }",
        {"c": campaign_id, "a": [agent["createAgent"]["agent"]["id"]]},
    )
    await tenant.data(
        "mutation($id: ID!) { recordEngagement(input: {campaignId: $id, kind: CLICK, "
        "count: 5}) { engagement { clicks } } }",
        {"id": campaign_id},
    )

    outage.stop()
    started = time.monotonic()
    body = await tenant.gql(DASHBOARD)
    elapsed = time.monotonic() - started
    node = body["data"]["campaigns"]["edges"][0]["node"]
    assert node["name"] == "Up"
    assert node["engagement"] is None
    assert node["agents"]["edges"][0]["node"] == {"name": "Ann", "activeTasks": None}
    assert set(error_codes(body)) == {"STORE_UNAVAILABLE"}
    paths = sorted(tuple(e["path"]) for e in body["errors"])
    assert paths == [
        ("campaigns", "edges", 0, "node", "agents", "edges", 0, "node", "activeTasks"),
        ("campaigns", "edges", 0, "node", "engagement"),
    ]
    assert elapsed < STORE_TIMEOUT * 5, f"request took {elapsed:.1f}s with Redis down"

    async with engine.connect() as conn:
        before = (
            await conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.tenant_id == tenant.id)
            )
        ).scalar_one()
    failed = await tenant.gql(
        "mutation($id: ID!) { recordEngagement(input: {campaignId: $id, "
        "kind: CLICK, count: 1}) { engagement { clicks } } }",
        {"id": campaign_id},
    )
    assert error_codes(failed) == ["STORE_UNAVAILABLE"]
    async with engine.connect() as conn:
        after = (
            await conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.tenant_id == tenant.id)
            )
        ).scalar_one()
    assert after == before, "an event was kept for an increment that did not happen"
    ready = await client.get("/readyz")
    assert ready.status_code == 503

    outage.restart()
    healed = await tenant.data(DASHBOARD)
    assert healed["campaigns"]["edges"][0]["node"]["engagement"] == {"clicks": 5}
    assert (await client.get("/readyz")).status_code == 200
