"""A document of several operations runs the one the request names, and nothing otherwise.

The spec's GetOperation (and graphql-core) refuse a document of several operations sent
without ``operationName``: "Must provide operation name if query contains multiple
operations." Strawberry put the first operation's name in the missing one's place, so the
first operation ran (a mutation, if it came first). Every transport must refuse it, before
anything runs: HTTP POST and GET, under either JSON media type, graphql-transport-ws, and
the legacy graphql-ws protocol.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from app.main import create_app
from app.stores.postgres.tables import agent
from tests.api import raw_ws
from tests.serving import served
from tests.support import TenantClient, error_codes

MUTATION_FIRST = (
    'mutation B { createAgent(input: {name: "twoops"}) { agent { name } } } '
    "query A { viewer { role } }"
)
TWO_QUERIES = "query A { viewer { role } } query C { agents { totalCount } }"
MULTIPLE = "Must provide operation name if query contains multiple operations."


async def agents_of(engine: AsyncEngine, tenant_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(agent).where(agent.c.tenant_id == tenant_id)
        return int((await conn.execute(query)).scalar_one())


def stream_events(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body, each {"event", "data"} with its data decoded."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.partition(": ")[::2] for line in block.split("\n") if ": " in line)
        if "event" in fields:
            data = fields.get("data")
            events.append({"event": fields["event"], "data": json.loads(data) if data else None})
    return events


def subscribe(op_id: str, query: str, operation_name: str) -> dict[str, Any]:
    payload = {"query": query, "operationName": operation_name}
    return {"id": op_id, "type": "subscribe", "payload": payload}


def refused_as_ambiguous(body: dict[str, Any]) -> None:
    assert [e["message"] for e in body["errors"]] == [MULTIPLE], body
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body.get("data") is None, body
    assert "path" not in body["errors"][0], body


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_a_document_of_several_operations_runs_nothing_unless_one_is_named(
    http: AsyncClient, tenant: TenantClient, engine: AsyncEngine, accept: str
) -> None:
    headers = {"Authorization": f"Bearer {tenant.token()}", "Accept": accept}

    async def post(**request: Any) -> tuple[int, dict[str, Any]]:
        response = await http.post(
            "/graphql", json={"query": MUTATION_FIRST, **request}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return response.status_code, body

    status, body = await post()
    refused_as_ambiguous(body)
    assert status == (200 if accept == "application/json" else 400), body
    assert await agents_of(engine, tenant.id) == 0

    status, body = await post(operationName=None)
    refused_as_ambiguous(body)
    assert await agents_of(engine, tenant.id) == 0

    status, body = await post(operationName="Nope")
    assert status == 400, body
    assert [e["message"] for e in body["errors"]] == ['Unknown operation named "Nope".'], body
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert await agents_of(engine, tenant.id) == 0

    status, body = await post(operationName="A")
    assert (status, body.get("errors"), body["data"]) == (200, None, {"viewer": {"role": "EDITOR"}})
    assert await agents_of(engine, tenant.id) == 0

    status, body = await post(operationName="B")
    assert body["data"] == {"createAgent": {"agent": {"name": "twoops"}}}, body
    assert await agents_of(engine, tenant.id) == 1


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_a_document_of_several_operations_over_get_without_a_name_is_refused(
    http: AsyncClient, tenant: TenantClient, engine: AsyncEngine, accept: str
) -> None:
    headers = {"Authorization": f"Bearer {tenant.token()}", "Accept": accept}

    for query in (TWO_QUERIES, MUTATION_FIRST):
        response = await http.get("/graphql", params={"query": query}, headers=headers)
        refused_as_ambiguous(response.json())
        assert response.status_code == (200 if accept == "application/json" else 400)
    assert await agents_of(engine, tenant.id) == 0
    named = await http.get(
        "/graphql", params={"query": TWO_QUERIES, "operationName": "C"}, headers=headers
    )
    assert named.json()["data"] == {"agents": {"totalCount": 0}}, named.text
    assert "errors" not in named.json(), named.text


async def test_a_document_of_several_operations_over_graphql_transport_ws_is_refused(
    live_url: str, tenant: TenantClient, engine: AsyncEngine
) -> None:
    socket = await raw_ws.open_socket(live_url, tenant.token())
    try:
        await raw_ws.subscribe(socket, "1", MUTATION_FIRST)
        async with asyncio.timeout(10):
            message = await raw_ws.receive(socket)
        assert message["type"] == "error", message
        assert message["id"] == "1"
        assert [e["message"] for e in message["payload"]] == [MULTIPLE], message
        assert [e["extensions"]["code"] for e in message["payload"]] == ["BAD_USER_INPUT"]
        # A name the document does not define is refused too.
        await raw_ws.send(socket, subscribe("2", MUTATION_FIRST, "Nope"))
        async with asyncio.timeout(10):
            message = await raw_ws.receive(socket)
        assert (message["id"], message["type"]) == ("2", "error"), message
        assert [e["message"] for e in message["payload"]] == ['Unknown operation named "Nope".']
        # The socket is still usable, and a named operation of the same document runs.
        await raw_ws.send(socket, subscribe("3", MUTATION_FIRST, "A"))
        async with asyncio.timeout(10):
            message = await raw_ws.receive(socket)
        assert (message["id"], message["type"]) == ("3", "next"), message
        assert message["payload"]["data"] == {"viewer": {"role": "EDITOR"}}, message
        assert "errors" not in message["payload"], message
    finally:
        await socket.close()
    assert await agents_of(engine, tenant.id) == 0


async def test_a_document_of_several_operations_over_graphql_sse_is_refused_in_the_stream(
    live_url: str, tenant: TenantClient
) -> None:
    query = "query A { viewer { role } } subscription S { campaignEvents { id } }"
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {tenant.token()}"}
    async with AsyncClient(base_url=f"http://{live_url}", timeout=20) as client:
        response = await client.post("/graphql", json={"query": query}, headers=headers)

    assert response.status_code == 200  # the protocol reports errors in the stream
    events = stream_events(response.text)
    assert [e["event"] for e in events] == ["next", "complete"], events
    refused_as_ambiguous(events[0]["data"])


@pytest_asyncio.fixture
async def legacy_url(app: Starlette) -> AsyncIterator[str]:
    """A second instance on the same stores with the legacy protocol switched on."""
    legacy = create_app(app.state.settings.model_copy(update={"legacy_graphql_ws": True}))
    async with LifespanManager(legacy), served(legacy) as host:
        yield host


async def test_a_document_of_several_operations_over_legacy_graphql_ws_is_refused(
    legacy_url: str, tenant: TenantClient, engine: AsyncEngine
) -> None:
    async with connect(
        f"ws://{legacy_url}/graphql", subprotocols=[Subprotocol("graphql-ws")]
    ) as socket:

        async def receive() -> dict[str, Any]:
            while True:
                async with asyncio.timeout(10):
                    message: dict[str, Any] = json.loads(await socket.recv())
                if message["type"] != "ka":  # the protocol's keep-alive
                    return message

        init = {"Authorization": f"Bearer {tenant.token()}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        assert (await receive())["type"] == "connection_ack"
        start = {"id": "1", "type": "start", "payload": {"query": MUTATION_FIRST}}
        await socket.send(json.dumps(start))

        message = await receive()

        assert message["type"] == "error", message
        assert message["id"] == "1"
        assert message["payload"]["message"] == MULTIPLE, message
        assert message["payload"]["extensions"] == {"code": "BAD_USER_INPUT"}, message
    assert await agents_of(engine, tenant.id) == 0
