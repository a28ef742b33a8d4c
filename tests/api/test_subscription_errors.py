"""Over WebSocket, a refused operation gets the same coded errors as over HTTP: an `error`
message whose errors carry `extensions.code`, not a bare `complete` and a traceback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.exceptions import ConnectionClosed

from tests.api import raw_ws
from tests.support import TenantClient, new_tenant

DEEP = (
    "subscription { campaignEvents { campaign { "
    + "agents { edges { node { campaigns { edges { node { " * 3
    + "id"
    + " } } } } } }" * 3
    + " } } }"
)
ALIASES = "subscription { campaignEvents { " + " ".join(f"a{i}: id" for i in range(40)) + " } }"

CASES = {
    "syntax error": ("subscription { campaignEvents { id ", "BAD_USER_INPUT"),
    "unknown field": ("subscription { campaignEvents { nope } }", "BAD_USER_INPUT"),
    "too many aliases": (ALIASES, "OPERATION_LIMIT"),
    "too deep": (DEEP, "OPERATION_LIMIT"),
    "bad variable": (
        "subscription($c: ID) { campaignEvents(campaignId: $c) { id } }",
        "BAD_USER_INPUT",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_refused_subscription_gets_coded_errors_and_the_socket_stays_usable(
    engine: AsyncEngine, http: AsyncClient, live_url: str, case: str
) -> None:
    query, code = CASES[case]
    tenant = await new_tenant(engine, http)
    socket = await raw_ws.open_socket(live_url, tenant.token())
    try:
        variables = {"c": ["not", "an", "id"]} if case == "bad variable" else {}
        await raw_ws.subscribe(socket, "1", query, **variables)
        async with asyncio.timeout(10):
            message = await raw_ws.receive(socket)
        assert message["type"] == "error", message
        assert message["id"] == "1"
        codes = [e.get("extensions", {}).get("code") for e in message["payload"]]
        assert codes and set(codes) == {code}, message
        # The connection survives a refused operation: another one still runs.
        await raw_ws.subscribe(socket, "2", "subscription { campaignEvents { id } }")
        await raw_ws.complete(socket, "2")
    finally:
        await socket.close()


@pytest.mark.parametrize(
    "message",
    [
        {"id": "p", "type": "subscribe", "payload": {"query": 5}},
        {"id": 1, "type": "subscribe", "payload": {"query": "{ viewer { role } }"}},
        {"id": "v", "type": "subscribe", "payload": {"query": "{ __typename }", "variables": []}},
        {"id": "e", "type": "subscribe", "payload": {"query": "{ __typename }", "extensions": "x"}},
        {
            "id": "o",
            "type": "subscribe",
            "payload": {"query": "{ __typename }", "operationName": 1},
        },
        {"id": "n", "type": "subscribe", "payload": None},
    ],
    ids=["query", "id", "variables", "extensions", "operationName", "payload"],
)
async def test_a_subscribe_message_that_is_not_the_protocols_closes_the_socket_with_4400(
    tenant: TenantClient, live_url: str, message: dict[str, Any]
) -> None:
    ws = await raw_ws.open_socket(live_url, tenant.token())
    try:
        await raw_ws.send(ws, message)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(raw_ws.receive(ws), 10)
    finally:
        await ws.close()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400, closed.value
