"""A graphql-transport-ws client (the gql package), as an independent peer of our server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.websockets import WebsocketsTransport

EVENTS_QUERY = """
subscription($campaignId: ID, $after: String) {
  campaignEvents(campaignId: $campaignId, after: $after) {
    id type occurredAt campaign { id name status }
  }
}
"""


def events(**variables: Any) -> GraphQLRequest:
    return GraphQLRequest(EVENTS_QUERY, variable_values=variables)


@asynccontextmanager
async def ws_session(host: str, token: str | None) -> AsyncIterator[AsyncClientSession]:
    init: dict[str, Any] = {"Authorization": f"Bearer {token}"} if token else {}
    transport = WebsocketsTransport(
        url=f"ws://{host}/graphql",
        init_payload=init,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        connect_timeout=10,
        close_timeout=5,
        ack_timeout=10,
    )
    async with Client(transport=transport) as session:
        yield session
