"""A bare graphql-transport-ws peer on the `websockets` library.

gql is the client the behaviour tests use; this one exists for tests that must hold a
thousand sockets at once or drop one the way a network does (no close frame), which a
full client library deliberately hides.
"""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.api.subscriptions_client import EVENTS_QUERY


async def open_socket(host: str, token: str) -> ClientConnection:
    """Connect and complete connection_init; raises if the server does not acknowledge."""
    socket = await connect(
        f"ws://{host}/graphql",
        subprotocols=[Subprotocol("graphql-transport-ws")],
        open_timeout=20,
        ping_interval=None,  # the server's keep-alive is what is under test, not ours
    )
    await send(socket, {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    ack = await receive(socket)
    if ack.get("type") != "connection_ack":
        raise AssertionError(f"expected connection_ack, got {ack}")
    return socket


async def subscribe(
    socket: ClientConnection, op_id: str, query: str = EVENTS_QUERY, **variables: Any
) -> None:
    await send(
        socket,
        {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}},
    )


async def complete(socket: ClientConnection, op_id: str) -> None:
    await send(socket, {"id": op_id, "type": "complete"})


async def send(socket: ClientConnection, message: dict[str, Any]) -> None:
    await socket.send(json.dumps(message))


async def receive(socket: ClientConnection) -> dict[str, Any]:
    """The next protocol message, answering the server's pings on the way."""
    while True:
        message: dict[str, Any] = json.loads(await socket.recv())
        if message.get("type") == "ping":
            await send(socket, {"type": "pong"})
            continue
        return message


def drop(socket: ClientConnection) -> None:
    """Vanish as a dead network peer would: the TCP connection goes, no close frame is sent."""
    socket.transport.abort()
