"""Waiting on what the server's fan-out holds: subscriptions register asynchronously, so a
test that commits an event must first see its subscribers in the hub."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from uuid import UUID

from app.events.hub import StreamHub


def subscribers_of(hub: StreamHub, tenant_id: UUID, stream: str = "campaign") -> int:
    reader = hub.readers.get((tenant_id, stream))
    return len(reader.subscribers) if reader is not None else 0


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls the server's state
            await asyncio.sleep(0.05)


async def until_subscribed(
    hub: StreamHub, tenant_id: UUID, count: int, stream: str = "campaign"
) -> None:
    await until(lambda: subscribers_of(hub, tenant_id, stream) >= count)
