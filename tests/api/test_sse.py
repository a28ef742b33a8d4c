"""Subscriptions over Server-Sent Events (graphql-sse, distinct connections mode).

The same subscription as over WebSocket: its auth, limits and tenant binding, and each
event's id as the SSE ``id:``, so that a client reconnecting with ``Last-Event-ID`` resumes
exactly after it. Driven by graphql-sse's own client (Node) through a relay whose
connection the test drops, and by httpx for what a protocol client hides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.events.hub import entries_of
from app.ids import decode_id
from app.settings import Settings
from app.stores.redis import keys
from tests.api.hub_state import subscribers_of, until, until_subscribed
from tests.api.test_subscriptions import new_campaign, relayed
from tests.http_spec.tools import install_tools
from tests.node_packages import node_missing
from tests.serving import served
from tests.support import TenantClient, another_app
from tests.tcp_relay import tcp_relay

RECORD = """mutation($id: ID!) {
  recordEngagement(input: {campaignId: $id, kind: CLICK, count: 1}) { engagement { clicks } } }"""
EVENTS = "subscription($c: ID) { campaignEvents(campaignId: $c) { id type } }"
STREAM = {"Accept": "text/event-stream"}


def sse_events(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body: each {"event", "id", "data"} (comments dropped)."""
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            event[name] = value[1:] if value.startswith(" ") else value
        if event:
            if event.get("data"):
                event["data"] = json.loads(event["data"])
            found.append(event)
    return found


async def read_events(
    response: httpx.Response, until_complete: bool = True, count: int | None = None
) -> list[dict[str, Any]]:
    """Events as they arrive, until ``complete`` (or ``count`` of them)."""
    buffer, found = "", []
    async for text in response.aiter_text():
        buffer += text
        *blocks, buffer = buffer.replace("\r\n", "\n").split("\n\n")
        for block in blocks:
            found += sse_events(block + "\n\n")
        if until_complete and found and found[-1].get("event") == "complete":
            return found
        if count is not None and len([e for e in found if e.get("event") == "next"]) >= count:
            return found
    return found


async def clicks(tenant: TenantClient, campaign_id: str, n: int) -> None:
    for _ in range(n):
        await tenant.data(RECORD, {"id": campaign_id})


def auth(tenant: TenantClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.token()}"}


@pytest.mark.skipif(
    node_missing() is not None, reason=f"the client runs on Node.js: {node_missing()}"
)
async def test_graphql_sse_client_resumes_across_a_dropped_connection_missing_nothing(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient, live_url: str
) -> None:
    tools = install_tools()
    campaign_id = await new_campaign(tenant)
    await relayed(engine, tenant)
    query = f'subscription {{ campaignEvents(campaignId: "{campaign_id}") {{ id type }} }}'
    async with tcp_relay(live_url) as relay:
        client = await asyncio.create_subprocess_exec(
            "node",
            str(tools / "sse_client.mjs"),
            f"http://127.0.0.1:{relay.port}/graphql",
            tenant.token(),
            query,
            "12",
            cwd=tools,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert client.stdout is not None
        lines: list[dict[str, Any]] = []

        async def read() -> None:
            assert client.stdout is not None
            async for line in client.stdout:
                lines.append(json.loads(line))

        reading = asyncio.create_task(read())
        try:
            await until_subscribed(app.state.hub, tenant.id, 1, stream="campaign")
            await clicks(tenant, campaign_id, 4)
            await until(lambda: sum("result" in line for line in lines) == 4, timeout=20)
            assert relay.cut() == 1  # the network drops the stream
            await until(lambda: subscribers_of(app.state.hub, tenant.id) == 0, timeout=20)
            await clicks(tenant, campaign_id, 4)  # committed while it is away
            await until(lambda: sum("result" in line for line in lines) >= 8, timeout=30)
            await clicks(tenant, campaign_id, 4)  # and live again
            async with asyncio.timeout(30):
                await client.wait()
            await reading
        finally:
            if client.returncode is None:
                client.kill()
                await client.wait()
    errors = [line for line in lines if "error" in line]
    assert not errors, errors
    results = [line["result"]["data"]["campaignEvents"] for line in lines if "result" in line]
    ids = [event["id"] for event in results]
    assert [event["type"] for event in results] == ["ENGAGEMENT"] * 12
    assert len(set(ids)) == 12, ids  # nothing twice
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    # It connected, was cut, and came back once, on its own.
    assert [line["connected"] for line in lines if "connected" in line] == [False, True]
    # Nothing missed: exactly the campaign's events in the stream from the first one seen.
    entries = entries_of(
        await app.state.stores.redis.xrange(keys.event_stream(tenant.id), min=ids[0])
    )
    campaign = decode_id(campaign_id, "Campaign")
    assert [e.stream_id for e in entries if e.campaign_id == campaign] == ids


async def test_last_event_id_resumes_right_after_that_event_and_wins_over_after(
    http: httpx.AsyncClient, tenant: TenantClient, live_url: str, app: Starlette
) -> None:
    campaign_id = await new_campaign(tenant)
    await clicks(tenant, campaign_id, 3)
    body = {
        "query": EVENTS.replace("(campaignId: $c)", '(campaignId: $c, after: "0-0")'),
        "variables": {"c": campaign_id},
    }
    async with httpx.AsyncClient(base_url=f"http://{live_url}", timeout=20) as client:
        async with client.stream(
            "POST", "/graphql", json=body, headers={**STREAM, **auth(tenant)}
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first = await read_events(response, until_complete=False, count=4)
        ids = [e["id"] for e in first if e.get("event") == "next"]
        assert [
            e["data"]["data"]["campaignEvents"]["id"] for e in first
        ] == ids  # id: is the cursor
        assert [e["data"]["data"]["campaignEvents"]["type"] for e in first] == [
            "CREATED",
            "ENGAGEMENT",
            "ENGAGEMENT",
            "ENGAGEMENT",
        ]
        # Back with Last-Event-ID of the second event: `after: "0-0"` in the document loses.
        async with client.stream(
            "POST",
            "/graphql",
            json=body,
            headers={**STREAM, **auth(tenant), "Last-Event-ID": ids[1]},
        ) as response:
            resumed = await read_events(response, until_complete=False, count=2)
    assert [e["id"] for e in resumed] == ids[2:]


async def test_a_subscription_comes_by_get_too_but_a_mutation_does_not(
    app: Starlette, tenant: TenantClient, live_url: str
) -> None:
    campaign_id = await new_campaign(tenant)
    async with httpx.AsyncClient(base_url=f"http://{live_url}", timeout=20) as client:
        params = {"query": EVENTS, "variables": json.dumps({"c": campaign_id})}
        async with client.stream(
            "GET", "/graphql", params=params, headers={**STREAM, **auth(tenant)}
        ) as response:
            assert response.status_code == 200
            reading = asyncio.create_task(read_events(response, until_complete=False, count=1))
            await until_subscribed(app.state.hub, tenant.id, 1)
            await clicks(tenant, campaign_id, 1)
            got = await asyncio.wait_for(reading, 20)
        assert got[0]["data"]["data"]["campaignEvents"]["type"] == "ENGAGEMENT"
        mutation = {"query": RECORD, "variables": json.dumps({"id": campaign_id})}
        refused = await client.get("/graphql", params=mutation, headers={**STREAM, **auth(tenant)})
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({}, {"query": EVENTS}, "UNAUTHENTICATED"),
        ("auth", {"query": "subscription { campaignEvents { nope } }"}, "BAD_USER_INPUT"),
        ("auth", {"query": "subscription { campaignEvents {"}, "BAD_USER_INPUT"),
        (
            "auth",
            {
                "query": EVENTS,
                "variables": {"c": "Q2FtcGFpZ246MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"},
            },
            "NOT_FOUND",
        ),
        ("auth+bad-cursor", {"query": EVENTS}, "BAD_USER_INPUT"),
    ],
    ids=["no credential", "invalid", "unparsable", "unknown campaign", "bad Last-Event-ID"],
)
async def test_errors_before_any_event_come_in_the_stream_with_their_code(
    tenant: TenantClient, live_url: str, headers: Any, body: dict[str, Any], code: str
) -> None:
    sent = dict(STREAM)
    if isinstance(headers, str) and headers.startswith("auth"):
        sent.update(auth(tenant))
        if headers.endswith("bad-cursor"):
            sent["Last-Event-ID"] = "not-an-id"
    async with httpx.AsyncClient(base_url=f"http://{live_url}", timeout=20) as client:
        response = await client.post("/graphql", json=body, headers=sent)
    assert response.status_code == 200  # the protocol reports errors in the stream
    events = sse_events(response.text)
    assert [e["event"] for e in events] == ["next", "complete"]
    errors = events[0]["data"]["errors"]
    assert [e["extensions"]["code"] for e in errors][:1] == [code], errors
    assert "id" not in events[0]
    if headers == "auth+bad-cursor":  # the refusal names what the client sent
        assert errors[0]["extensions"]["argument"] == "Last-Event-ID", errors
        assert "'Last-Event-ID'" in errors[0]["message"], errors


class RawStream:
    """An SSE request on a socket whose receive buffer is made small before it connects
    (a client library would set it too late, after the window is agreed), read only when
    the test says: a client that falls behind, as a slow mobile link would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.body = b""

    @classmethod
    async def open(cls, host: str, body: dict[str, Any], headers: dict[str, str]) -> RawStream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        address, port = host.rsplit(":", 1)
        await asyncio.get_running_loop().sock_connect(sock, (address, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=16384)
        payload = json.dumps(body).encode()
        head = ["POST /graphql HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
        head += [f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
        await writer.drain()
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 200"), status
        assert b"transfer-encoding: chunked" in status.lower()
        return cls(reader, writer)

    async def read_some(self, at_most: int) -> bool:
        """Up to ``at_most`` bytes of the body; False once the body has ended."""
        size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            return False
        left = size
        while left:
            data = await self.reader.read(min(left, at_most))
            if not data:
                return False
            self.body += data
            left -= len(data)
        await self.reader.readexactly(2)
        return True

    async def read_all(self, pause: float, fast: asyncio.Event) -> list[dict[str, Any]]:
        """Every event until ``complete``, a little at a time with ``pause`` between reads
        until ``fast`` is set."""
        while await self.read_some(4096):
            if b"event: complete" in self.body:
                break
            if not fast.is_set():
                await asyncio.sleep(pause)
        return sse_events(self.body.decode())

    def close(self) -> None:
        self.writer.close()


@pytest.mark.parametrize("reader", ["stalled", "slow"])
async def test_a_reader_that_cannot_keep_up_is_cut_with_a_coded_error_and_resumes_without_loss(
    settings: Settings,
    tenant: TenantClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reader: str,
) -> None:
    """Events of 120 kB, faster than the client reads them: the slow reader takes 4 kB
    every 0.2 s, the stalled one nothing at all. The slow one falls behind the hub's queue
    (made 2 batches deep here); the stalled one leaves a write waiting
    CHIMERA_SSE_SEND_TIMEOUT_SECONDS (1 s here). Either way the server ends the
    subscription and says so in the stream, SLOW_CONSUMER with the last event written,
    instead of holding events for it; the client reads it once it catches up, resumes from
    there with Last-Event-ID and misses nothing."""
    slow = reader == "slow"
    if slow:
        monkeypatch.setattr("app.events.hub.QUEUE_BATCHES", 2)
    campaign_id = await new_campaign(tenant)
    await tenant.data(
        "mutation($id: ID!, $g: String!) {"
        " updateCampaign(input: {id: $id, goal: $g}) { campaign { id } } }",
        {"id": campaign_id, "g": "g" * 4000},
    )
    fields = " ".join(f"g{i}: campaign {{ goal }}" for i in range(30))
    query = f"subscription($c: ID) {{ campaignEvents(campaignId: $c) {{ id type {fields} }} }}"
    body = {"query": query, "variables": {"c": campaign_id}}
    changes: dict[str, Any] = {"ws_keepalive_seconds": 60}
    changes["sse_send_timeout_seconds"] = 30.0 if slow else 1.0
    async with (
        another_app(settings, tmp_path, **changes) as cutting_app,
        served(cutting_app) as host,
    ):
        hub = cutting_app.state.hub
        stream = await RawStream.open(host, body, {**STREAM, **auth(tenant)})
        try:
            await until_subscribed(hub, tenant.id, 1)
            fast = asyncio.Event()
            reading = asyncio.create_task(stream.read_all(0.2, fast)) if slow else None
            sent = 0
            while subscribers_of(hub, tenant.id) and sent < 150:
                await clicks(tenant, campaign_id, 1)
                sent += 1
            await until(lambda: subscribers_of(hub, tenant.id) == 0, timeout=30)
            fast.set()  # catching up now
            async with asyncio.timeout(60):
                received = await (reading or stream.read_all(0, fast))
        finally:
            stream.close()
        delivered = [e for e in received if e["event"] == "next" and "id" in e]
        assert [e["event"] for e in received[-2:]] == ["next", "complete"], received[-2:]
        error = received[-2]["data"]["errors"][0]["extensions"]
        assert (error["code"], error["reason"]) == ("STORE_UNAVAILABLE", "SLOW_CONSUMER")
        assert error["after"] == delivered[-1]["id"]
        assert len(delivered) < sent  # cut, not buffered without bound
        print(f"\n{reader} reader: cut after {len(delivered)} of {sent} events")  # -s shows it
        # Reconnecting from the error's cursor delivers every event after it, once.
        async with (
            httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as client,
            client.stream(
                "POST",
                "/graphql",
                json=body,
                headers={**STREAM, **auth(tenant), "Last-Event-ID": error["after"]},
            ) as response,
        ):
            rest = await read_events(response, until_complete=False, count=sent - len(delivered))
    ids = [e["id"] for e in delivered] + [e["id"] for e in rest]
    assert len(ids) == sent and len(set(ids)) == sent
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))


async def test_a_stopping_server_ends_its_open_streams_and_the_client_resumes_elsewhere(
    settings: Settings, engine: AsyncEngine, tenant: TenantClient, tmp_path: Path
) -> None:
    """A server stopping gracefully waits for its responses to finish, and an event stream
    never would: it ends them, unfinished, so that it stops at once and each client takes
    it for a network failure and reconnects, here to another instance, with Last-Event-ID."""
    campaign_id = await new_campaign(tenant)
    await clicks(tenant, campaign_id, 2)
    await relayed(engine, tenant)
    body = {
        "query": EVENTS.replace("(campaignId: $c)", '(campaignId: $c, after: "0-0")'),
        "variables": {"c": campaign_id},
    }
    async with (
        another_app(settings, tmp_path / "b") as second,
        served(second) as elsewhere,
        another_app(settings, tmp_path / "a") as first,
        httpx.AsyncClient(timeout=20) as client,
    ):
        server = contextlib.AsyncExitStack()
        host = await server.enter_async_context(served(first))
        async with client.stream(
            "POST", f"http://{host}/graphql", json=body, headers={**STREAM, **auth(tenant)}
        ) as response:
            chunks, text = response.aiter_text(), ""
            while len(seen := sse_events(text.rpartition("\n\n")[0])) < 3:
                text += await anext(chunks)
            stopping = asyncio.create_task(server.aclose())
            async with asyncio.timeout(5):  # a server waiting for the stream would hang here
                with pytest.raises(httpx.RemoteProtocolError):  # cut, not a normal end
                    async for _ in chunks:
                        pass
                await stopping  # and the server stopped at once
        assert [e["data"]["data"]["campaignEvents"]["type"] for e in seen] == [
            "CREATED",
            "ENGAGEMENT",
            "ENGAGEMENT",
        ]
        await clicks(tenant, campaign_id, 1)  # while it is away
        async with client.stream(
            "POST",
            f"http://{elsewhere}/graphql",
            json=body,
            headers={**STREAM, **auth(tenant), "Last-Event-ID": seen[-1]["id"]},
        ) as response:
            rest = await read_events(response, until_complete=False, count=1)
    assert rest[0]["data"]["data"]["campaignEvents"]["type"] == "ENGAGEMENT"
    assert rest[0]["id"] > seen[-1]["id"]
