"""Clients of a load test that must lose nothing: writers that retry with idempotency keys
until acknowledged, subscribers that resume with `after`, and what they were told.

Shared by the many-instances test (an app instance killed) and the Redis Cluster failover
test (a Redis primary killed)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from gql.transport.exceptions import TransportError
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.stores.redis import keys
from tests.api.subscriptions_client import events, ws_session
from tests.support import TenantClient

SETTLE_SECONDS = 60.0


class Transient(Exception):
    """The request may not have reached an instance, or its answer was lost: retry it."""


@dataclass
class Acknowledged:
    """What clients were told succeeded, and what went wrong on the way."""

    clicks: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, str] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    never_acknowledged: list[str] = field(default_factory=list)
    transient: Counter[str] = field(default_factory=Counter)
    reads: Counter[str] = field(default_factory=Counter)


async def post(
    client: httpx.AsyncClient, host: str, token: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """The data of one request, or Transient when the balancer or a dying instance failed it."""
    try:
        reply = await client.post(
            f"http://{host}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.TransportError as exc:
        raise Transient(type(exc).__name__) from exc
    if reply.status_code in (502, 503, 504):
        raise Transient(str(reply.status_code))
    assert reply.status_code == 200, (reply.status_code, reply.text)
    body = reply.json()
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    if "STORE_UNAVAILABLE" in codes:
        raise Transient("STORE_UNAVAILABLE")
    assert not codes, body
    data: dict[str, Any] = body["data"]
    return data


@dataclass
class Writer:
    """A client writing through the balancer, retrying as one with idempotency keys does."""

    client: httpx.AsyncClient
    host: str
    token: str
    acked: Acknowledged

    async def until_acknowledged(
        self, what: str, query: str, variables: dict[str, Any]
    ) -> dict[str, Any] | None:
        for _ in range(40):
            try:
                return await post(self.client, self.host, self.token, query, variables)
            except Transient as exc:
                self.acked.transient[str(exc)] += 1
                await asyncio.sleep(0.1)
        self.acked.never_acknowledged.append(what)
        return None


@dataclass
class Subscriber:
    """A campaignEvents subscriber through the balancer that reconnects with `after`."""

    host: str
    token: str
    cursor: str
    received: list[str] = field(default_factory=list)
    reconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    progressed: asyncio.Event = field(default_factory=asyncio.Event)

    async def received_at_least(self, count: int) -> None:
        while len(self.received) < count:
            self.progressed.clear()
            await self.progressed.wait()

    async def run(self) -> None:
        while True:
            try:
                async with ws_session(self.host, self.token) as session:
                    stream = session.subscribe(events(after=self.cursor))
                    self.subscribed.set()
                    async for item in stream:
                        event_id = item["campaignEvents"]["id"]
                        self.received.append(event_id)
                        self.cursor = event_id
                        self.progressed.set()
            except (TransportError, OSError, websockets.WebSocketException, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
            self.reconnects += 1
            await asyncio.sleep(0.2)


async def stream_after(redis: Redis, tenant: TenantClient, after: str) -> list[tuple[str, int]]:
    """(stream id, outbox event id) of each entry of the tenant's stream after ``after``."""
    entries: Any = await redis.xrange(keys.event_stream(tenant.id), after, "+")
    return [(entry_id.decode(), int(fields[b"event"])) for entry_id, fields in entries]


async def drained(engine: AsyncEngine, tenant: TenantClient) -> None:
    async with asyncio.timeout(SETTLE_SECONDS):
        while True:
            async with engine.connect() as conn:
                waiting = await conn.scalar(
                    text(
                        "SELECT count(*) FROM outbox WHERE tenant_id = :t AND published_at IS NULL"
                    ),
                    {"t": tenant.id},
                )
            if waiting == 0:
                return
            await asyncio.sleep(0.2)
