"""The error table of docs/transports.md, row by row, over every transport.

Each row of the table names something a client can get wrong; this test sends that same bad
input by POST (application/json and application/graphql-response+json), GET, WebSocket
(graphql-transport-ws) and SSE (graphql-sse), describes what came back in the table's own
words, and compares. The table is the contract: change the behaviour and it must change too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from app.auth import Role
from tests.api import raw_ws
from tests.api.test_demand_control import set_limits
from tests.api.test_sse import sse_events
from tests.processes import ROOT
from tests.support import TenantClient, new_tenant

TABLE = ROOT / "docs" / "transports.md"
TRANSPORTS = ["POST, application/json", "POST, graphql-response+json", "GET", "WebSocket", "SSE"]
RESPONSE_JSON = "application/graphql-response+json"
UNKNOWN_ID = "Q2FtcGFpZ246MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"


@dataclass
class Bad:
    """One bad input: the GraphQL request, or a raw body / message where the request itself
    is what is malformed."""

    request: dict[str, Any] | None = None
    raw: bytes | None = None
    method_get_only: bool = False
    token: bool = True
    headers: dict[str, str] = field(default_factory=dict)


ALIASES = "{ " + " ".join(f"a{i}: __typename" for i in range(40)) + " }"
GREEDY = """{ campaigns(first: 100) { edges { node { id
  agents(first: 100) { edges { node { id activeTasks } } }
  media(first: 100) { edges { node { url } } } } } } }"""
UNKNOWN_HASH = hashlib.sha256(b"never sent").hexdigest()

ROWS: dict[str, Bad] = {
    "body is not JSON": Bad(raw=b'{"query": '),
    "document does not parse": Bad({"query": "{ campaigns {"}),
    "document does not validate": Bad({"query": "{ campaigns { nope } }"}),
    "a variable does not coerce": Bad(
        {"query": "query ($n: Int!) { campaigns(first: $n) { totalCount } }", "variables": {}}
    ),
    "too deep, too many aliases or tokens": Bad({"query": ALIASES}),
    "priced over the maximum cost": Bad({"query": GREEDY}),
    "no credential": Bad(
        {"query": "{ viewer { role } }"},
        token=False,
        headers={"GraphQL-Require-Preflight": "1"},  # past the GET's CSRF check
    ),
    "over the tenant's or the client's rate": Bad({"query": "{ campaigns { totalCount } }"}),
    "persisted document unknown": Bad(
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": UNKNOWN_HASH}}}
    ),
    "a field failed while executing": Bad({"query": '{ campaign(id: "nope") { id } }'}),
    "a mutation by GET": Bad(
        {"query": 'mutation { createAgent(input: {name: "x"}) { agent { id } } }'},
        method_get_only=True,
    ),
    "a GET without a preflight header or persisted document": Bad(
        {"query": "{ __typename }"}, method_get_only=True, token=False
    ),
    "body larger than `CHIMERA_MAX_BODY_BYTES`": Bad(
        {"query": "{ __typename }", "variables": {"pad": "x" * 1_100_000}}
    ),
}


def documented_rows() -> dict[str, dict[str, str]]:
    """The error table: what went wrong -> {column: cell}."""
    lines = TABLE.read_text().split("## Errors by transport", 1)[1].splitlines()
    rows = [line for line in lines if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    table = {}
    for line in rows[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return table


def codes(errors: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({f"`{e['extensions']['code']}`" for e in errors}))


def http_cell(response: httpx.Response) -> tuple[str, str]:
    """(code, cell) for an HTTP response in the table's words."""
    body = response.json()
    if "data" not in body:
        shape = "no `data`"
    elif body["data"] is None:
        shape = "`data: null`"
    else:
        shape = "`data` with null there"
    cell = f"{response.status_code}, {shape}"
    if response.headers.get("www-authenticate"):
        cell += f", `WWW-Authenticate: {response.headers['www-authenticate']}`"
    if response.headers.get("retry-after"):
        cell += ", `Retry-After`"
    if response.headers.get("allow"):
        cell += f", `Allow: {response.headers['allow']}`"
    media = response.headers["content-type"].split(";")[0]
    expected = (
        RESPONSE_JSON
        if "graphql-response" in response.request.headers["accept"]
        else "application/json"
    )
    assert media == expected, (media, response.text)
    return codes(body["errors"]), cell


class Transports:
    def __init__(self, http: httpx.AsyncClient, live_url: str, tenant: TenantClient) -> None:
        self.http, self.live_url, self.tenant = http, live_url, tenant

    def headers(self, bad: Bad, accept: str) -> dict[str, str]:
        sent = {"Accept": accept, **bad.headers}
        if bad.token:
            sent["Authorization"] = f"Bearer {self.tenant.token(Role.EDITOR)}"
        return sent

    async def post(self, bad: Bad, accept: str) -> tuple[str, str]:
        if bad.method_get_only:
            return "", "n/a"
        headers = {**self.headers(bad, accept), "Content-Type": "application/json"}
        content = bad.raw if bad.raw is not None else json.dumps(bad.request).encode()
        return http_cell(await self.http.post("/graphql", content=content, headers=headers))

    async def post_json(self, bad: Bad) -> tuple[str, str]:
        return await self.post(bad, "application/json")

    async def post_spec(self, bad: Bad) -> tuple[str, str]:
        return await self.post(bad, f"{RESPONSE_JSON}, application/json;q=0.9")

    async def get(self, bad: Bad) -> tuple[str, str]:
        if bad.request is None or len(json.dumps(bad.request)) > 100_000:
            return "", "n/a"  # no body to be malformed; no URL that long
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in bad.request.items()}
        response = await self.http.get(
            "/graphql", params=params, headers=self.headers(bad, RESPONSE_JSON)
        )
        return http_cell(response)

    async def websocket(self, bad: Bad) -> tuple[str, str]:
        if bad.method_get_only:
            return "", "n/a"
        socket = await connect(
            f"ws://{self.live_url}/graphql",
            subprotocols=[Subprotocol("graphql-transport-ws")],
            ping_interval=None,
        )
        try:
            init: dict[str, Any] = {"type": "connection_init", "payload": {}}
            if bad.token:
                init["payload"] = {"Authorization": f"Bearer {self.tenant.token(Role.EDITOR)}"}
            await raw_ws.send(socket, init)
            try:
                ack = await raw_ws.receive(socket)
                assert ack["type"] == "connection_ack", ack
                if bad.raw is not None:
                    await socket.send(bad.raw.decode())
                else:
                    await raw_ws.send(
                        socket, {"id": "1", "type": "subscribe", "payload": bad.request}
                    )
                first = await raw_ws.receive(socket)
            except ConnectionClosed as closed:
                return "", f"close {closed.rcvd.code if closed.rcvd else 'without a frame'}"
            if first["type"] == "error":
                return codes(first["payload"]), "`error` message"
            assert first["type"] == "next", first
            after = await raw_ws.receive(socket)
            assert after["type"] == "complete", after
            shape = "with errors" if first["payload"].get("errors") else "without errors"
            return codes(first["payload"].get("errors") or []), f"`next` {shape}, then `complete`"
        finally:
            await socket.close()

    async def sse(self, bad: Bad) -> tuple[str, str]:
        if bad.method_get_only:
            return "", "n/a"
        headers = {**self.headers(bad, "text/event-stream"), "Content-Type": "application/json"}
        content = bad.raw if bad.raw is not None else json.dumps(bad.request).encode()
        response = await self.http.post("/graphql", content=content, headers=headers)
        if not response.headers["content-type"].startswith("text/event-stream"):
            return http_cell(response)  # refused before it was a GraphQL request
        events = sse_events(response.text)
        assert [e["event"] for e in events] == ["next", "complete"], events
        errors = events[0]["data"].get("errors") or []
        return codes(errors), f"{response.status_code}, `next` with errors, then `complete`"


OBSERVERS: dict[str, Callable[[Transports, Bad], Awaitable[tuple[str, str]]]] = {
    "POST, application/json": Transports.post_json,
    "POST, graphql-response+json": Transports.post_spec,
    "GET": Transports.get,
    "WebSocket": Transports.websocket,
    "SSE": Transports.sse,
}


def test_the_table_has_a_row_for_every_bad_input_and_a_column_for_every_transport() -> None:
    table = documented_rows()
    assert set(table) == set(ROWS)
    for cells in table.values():
        assert set(cells) == {"code", *TRANSPORTS}


@pytest.mark.parametrize("row", list(ROWS))
async def test_each_transport_answers_a_bad_input_as_the_table_says(
    app: Starlette, engine: AsyncEngine, http: httpx.AsyncClient, live_url: str, row: str
) -> None:
    tenant = await new_tenant(engine, http)
    if row.startswith("over the tenant"):
        # A bucket that pays for a few operations and refills in hours: spent, it stays so.
        await set_limits(
            app, engine, tenant.id, client_rate_capacity=6, client_rate_per_second=0.001
        )
        while (await tenant.post(ROWS[row].request["query"])).status_code != 429:  # type: ignore[index]
            pass
    expected = documented_rows()[row]
    transports = Transports(http, live_url, tenant)
    observed = {}
    for name in TRANSPORTS:
        code, cell = await OBSERVERS[name](transports, ROWS[row])
        observed[name] = cell
        if cell != "n/a" and not cell.startswith("close"):  # a close frame has no error body
            assert re.sub(r"\s+", " ", code) == expected["code"], (name, code)
    assert observed == {name: expected[name] for name in TRANSPORTS}
