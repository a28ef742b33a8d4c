"""Subscriptions across app instances: the stream in Redis carries events between them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from app.auth import Role
from tests.api.subscriptions_client import events, ws_session
from tests.processes import free_port, served_env, start_serve
from tests.support import TenantClient

CREATE = 'mutation { createCampaign(input: {name: "Across"}) { campaign { id } } }'


async def test_an_event_committed_on_one_instance_reaches_a_subscriber_on_another(
    tenant: TenantClient, database_url: str, redis_url: str, pgvector_url: str, tmp_path: Path
) -> None:
    env = served_env(database_url, redis_url, pgvector_url, tmp_path, CHIMERA_INDEXER="false")
    ports = free_port(), free_port()
    instances = [await start_serve(env, port) for port in ports]
    try:
        async with ws_session(f"127.0.0.1:{ports[0]}", tenant.token(Role.VIEWER)) as session:
            stream = session.subscribe(events())

            async def first() -> dict[str, Any]:
                async with asyncio.timeout(30):
                    async for item in stream:
                        return dict(item["campaignEvents"])
                raise AssertionError("the subscription ended")

            receiving = asyncio.create_task(first())
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient() as client:
                reply = await client.post(
                    f"http://127.0.0.1:{ports[1]}/graphql",
                    json={"query": CREATE},
                    headers={"Authorization": f"Bearer {tenant.token()}"},
                )
            created = reply.json()["data"]["createCampaign"]["campaign"]["id"]
            event = await receiving
    finally:
        for process in instances:
            process.terminate()
            await process.wait()
    assert event["type"] == "CREATED"
    assert event["campaign"]["id"] == created
