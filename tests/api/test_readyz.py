"""/readyz reports the relay's lag (the age of the oldest unpublished outbox event) without
letting it decide readiness, and a PostgreSQL failure while reading it is reported, not a 500.

Lag is tested on an app of its own, on a database of its own, with its relay off: on the
session database the session app's relay publishes every event within milliseconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrations
from app.events.relay import RELAY_LAG_ALARM_SECONDS
from app.main import create_app
from app.settings import Settings
from app.stores.postgres.engine import create_engine
from app.stores.postgres.tables import outbox, tenant
from tests.engines import create_database, drop_database
from tests.support import HEALTH_TOKEN, SECRET

STORE_TIMEOUT = 1.0


@dataclass
class Unrelayed:
    http: AsyncClient
    engine: AsyncEngine  # the test's own connections, not the app's


@pytest_asyncio.fixture
async def unrelayed(
    pg_server_url: str, redis_url: str, pgvector_url: str, tmp_path: Path
) -> AsyncIterator[Unrelayed]:
    database_url = await create_database(pg_server_url, prefix="chimera_readyz")
    engine = create_engine(database_url, timeout=10)
    try:
        await migrations.upgrade(engine)
        settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            pgvector_url=pgvector_url,
            auth_secret=SECRET,
            health_token=HEALTH_TOKEN,
            data_dir=tmp_path / "data",
            store_timeout_seconds=STORE_TIMEOUT,
            indexer_enabled=False,
            relay_enabled=False,
            media_sweep_seconds=0,
        )
        app = create_app(settings)
        async with (
            LifespanManager(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
        ):
            yield Unrelayed(http, engine)
    finally:
        await engine.dispose()
        await drop_database(database_url)


async def _readyz(
    http: AsyncClient, *, token: str | None = HEALTH_TOKEN
) -> tuple[int, dict[str, Any]]:
    headers = {b"Authorization": f"Bearer {token}".encode()} if token else {}
    response = await http.get("/readyz", headers=headers)
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def _event(engine: AsyncEngine, *, age_seconds: float) -> int:
    """An unpublished campaign event created ``age_seconds`` ago, for a tenant of its own."""
    pk = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(insert(tenant).values(id=pk, slug=f"r-{pk.hex[:12]}", name="r"))
        event_id: int = (
            await conn.execute(
                insert(outbox)
                .values(
                    tenant_id=pk,
                    aggregate_type="campaign",
                    aggregate_id=uuid.uuid4(),
                    event_type="UPDATED",
                    payload={},
                    created_at=func.now() - text(f"interval '{age_seconds} seconds'"),
                )
                .returning(outbox.c.id)
            )
        ).scalar_one()
    return event_id


async def _publish(engine: AsyncEngine, event_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(outbox).where(outbox.c.id == event_id).values(published_at=func.now())
        )


async def test_readyz_reports_the_relay_beside_the_stores(http: AsyncClient) -> None:
    status, body = await _readyz(http)
    assert status == 200, body
    assert body["status"] == "ready"
    assert set(body["stores"]) == {"postgres", "redis", "objects", "vectors"}
    relay = body["events"]["relay"]
    assert set(relay) == {"ok", "oldest_unpublished_seconds", "alarm_seconds"}
    assert relay["alarm_seconds"] == RELAY_LAG_ALARM_SECONDS
    # The session app relays as it goes: nothing waits as long as the alarm, and it says so.
    # (Not a tighter bound: on a machine busy enough, a pass is seconds late, which is no
    # fault; seen at 9.8 s in CI while another suite ran beside it.)
    age = relay["oldest_unpublished_seconds"]
    assert age is None or 0 <= age < RELAY_LAG_ALARM_SECONDS, relay
    assert relay["ok"] is True
    assert all(check.startswith("ok (") for check in body["stores"].values()), body


@pytest.mark.parametrize("token", [None, "not-the-health-token", "é"])
async def test_readyz_without_the_health_token_says_only_which_stores_answer(
    http: AsyncClient, token: str | None
) -> None:
    status, body = await _readyz(http, token=token)
    assert status == 200, body
    assert body == {
        "status": "ready",
        "stores": {"postgres": "ok", "redis": "ok", "objects": "ok", "vectors": "ok"},
        "events": {"relay": {"ok": True}},
    }


async def test_relay_lag_is_reported_and_readiness_stays_up(unrelayed: Unrelayed) -> None:
    status, body = await _readyz(unrelayed.http)
    assert status == 200, body
    assert body["events"]["relay"] == {
        "ok": True,
        "oldest_unpublished_seconds": None,
        "alarm_seconds": RELAY_LAG_ALARM_SECONDS,
    }

    fresh = await _event(unrelayed.engine, age_seconds=5)
    status, body = await _readyz(unrelayed.http)
    relay = body["events"]["relay"]
    assert status == 200, body
    assert relay["ok"] is True
    assert 5 <= relay["oldest_unpublished_seconds"] < RELAY_LAG_ALARM_SECONDS

    stuck = await _event(unrelayed.engine, age_seconds=300)
    status, body = await _readyz(unrelayed.http)
    relay = body["events"]["relay"]
    # Stuck events are this instance's news, not its fault: it stays in the load balancer.
    assert status == 200, body
    assert body["status"] == "ready"
    assert relay["ok"] is False
    assert 300 <= relay["oldest_unpublished_seconds"] < 300 + 60

    await _publish(unrelayed.engine, stuck)
    await _publish(unrelayed.engine, fresh)
    status, body = await _readyz(unrelayed.http)
    assert status == 200, body
    assert body["events"]["relay"]["ok"] is True
    assert body["events"]["relay"]["oldest_unpublished_seconds"] is None


async def test_a_postgres_failure_reading_the_lag_is_reported_not_a_500(
    unrelayed: Unrelayed,
) -> None:
    """A migration holding the outbox's lock: the ping answers, the lag query cannot."""
    locked = asyncio.Event()
    release = asyncio.Event()

    async def hold_lock() -> None:
        async with unrelayed.engine.begin() as conn:
            await conn.execute(text("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            await release.wait()

    holder = asyncio.create_task(hold_lock())
    try:
        await asyncio.wait_for(locked.wait(), timeout=10)
        status, body = await _readyz(unrelayed.http)
    finally:
        release.set()
        await holder
    assert status == 200, body
    assert body["stores"]["postgres"].startswith("ok")
    relay = body["events"]["relay"]
    assert relay["ok"] is False
    assert relay["oldest_unpublished_seconds"] is None
    assert relay["error"], relay

    status, body = await _readyz(unrelayed.http)  # and it recovers with the lock gone
    assert status == 200, body
    assert body["events"]["relay"]["ok"] is True
