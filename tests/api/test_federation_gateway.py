"""Chimera's subgraph composed with a second subgraph and queried through a real gateway.

Hive Gateway (MIT, from npm, pinned in tests/federation/) serves the supergraph that
@theguild/federation-composition, the library it composes with, makes of Chimera's
``_service { sdl }`` and a small billing subgraph (tests/federation/billing.py). Queries cross
both subgraphs in both directions; the caller's bearer token reaches Chimera and binds the
tenant; and Chimera receives one ``_entities`` request per query level, never one per row.
Node.js runs only here, never in the service.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role
from app.settings import Settings
from app.stores.postgres.tables import agent, campaign
from tests.api.test_federation import insert_rows
from tests.federation import billing
from tests.federation.gateway import compose, hive_gateway, install_gateway
from tests.federation.supergraph import OUTPUT as SUPERGRAPH
from tests.federation.supergraph import supergraph_sdl
from tests.node_packages import node_missing
from tests.serving import served, served_asgi
from tests.support import TenantClient, another_app, new_tenant

pytestmark = pytest.mark.skipif(
    node_missing() is not None, reason=f"the gateway runs on Node.js: {node_missing()}"
)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Scope]]
Send = Callable[[Scope], Awaitable[None]]


@dataclass
class Recorded:
    authorization: str | None
    query: str


class RecordingApp:
    """Chimera's app, noting each GraphQL request it is sent (the gateway's fetches)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state
        self.requests: list[Recorded] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> Scope:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    headers = dict(scope["headers"])
                    authorization = headers.get(b"authorization")
                    body = json.loads(b"".join(chunks) or b"{}")
                    self.requests.append(
                        Recorded(
                            authorization.decode() if authorization else None,
                            str(body.get("query", "")),
                        )
                    )
            return message

        await self.app(scope, recording, send)

    def entities_requests(self) -> list[Recorded]:
        return [r for r in self.requests if "_entities" in r.query]


@dataclass
class Federation:
    gateway: str
    chimera: RecordingApp
    tenant: TenantClient
    campaigns: list[str]
    agents: list[str]

    async def query(self, query: str, token: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                f"{self.gateway}/graphql", json={"query": query}, headers=headers
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def gateway_packages() -> Path:
    return install_gateway()


@pytest_asyncio.fixture
async def federation(
    settings: Settings,
    engine: AsyncEngine,
    tmp_path: Path,
    gateway_packages: Path,
) -> AsyncIterator[Federation]:
    async with another_app(settings, tmp_path, federation=True) as application:
        chimera = RecordingApp(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            tenant, other = await new_tenant(engine, http), await new_tenant(engine, http)
            sdl = (await tenant.data("{ _service { sdl } }"))["_service"]["sdl"]
        campaigns = await insert_rows(engine, campaign, "Campaign", tenant.id, 3)
        agents = await insert_rows(engine, agent, "Agent", tenant.id, 2)
        [foreign] = await insert_rows(engine, campaign, "Campaign", other.id, 1)
        billing.LEDGER.invoices = [
            billing.Billed("INV-1", campaigns[0], agents[0], 1200),
            billing.Billed("INV-2", campaigns[1], agents[1], 3400),
            billing.Billed("INV-3", foreign, agents[0], 5600),
        ]
        async with served(chimera) as chimera_host, served_asgi(billing.app) as billing_host:  # type: ignore[arg-type]
            supergraph = tmp_path / "supergraph.graphql"
            await asyncio.to_thread(
                compose,
                gateway_packages,
                [
                    {"name": "chimera", "url": f"http://{chimera_host}/graphql", "sdl": sdl},
                    {
                        "name": "billing",
                        "url": f"http://{billing_host}/graphql",
                        "sdl": billing.schema.as_str(),
                    },
                ],
                supergraph,
            )
            async with hive_gateway(gateway_packages, supergraph, tmp_path) as gateway:
                chimera.requests.clear()
                yield Federation(gateway, chimera, tenant, campaigns, agents)
        billing.LEDGER.invoices = []


def only_foreign_campaign_missing(body: dict[str, Any]) -> None:
    """No error but the one a gateway reports for an entity its subgraph answered null: the
    other tenant's campaign of INV-3 (the third invoice), whose fields it cannot fill."""
    paths = [error.get("path", [])[:3] for error in body.get("errors") or []]
    assert all(path == ["invoices", 2, "campaign"] for path in paths), body


CAMPAIGNS_WITH_INVOICES = """{
  campaigns(first: 10, orderBy: {field: NAME, direction: ASC}) {
    edges { node { id name invoice { number amountCents } } }
  }
}"""

INVOICES_WITH_CAMPAIGNS = """{
  invoices {
    number
    campaign { id name }
    preparedBy { id name }
  }
}"""

TWO_LEVELS = """{
  invoices {
    number
    campaign { name invoice { number } agents(first: 5) { edges { node { name } } } }
  }
}"""


async def test_a_chimera_query_gets_the_billing_subgraphs_invoice_of_each_campaign(
    federation: Federation,
) -> None:
    body = await federation.query(CAMPAIGNS_WITH_INVOICES, federation.tenant.token(Role.VIEWER))
    assert not body.get("errors"), body
    nodes = [edge["node"] for edge in body["data"]["campaigns"]["edges"]]
    assert [n["id"] for n in nodes] == federation.campaigns  # c0, c1, c2: only this tenant's
    assert [n["invoice"] for n in nodes] == [
        {"number": "INV-1", "amountCents": 1200},
        {"number": "INV-2", "amountCents": 3400},
        None,
    ]
    # The token reached Chimera, once, for the root field.
    token = f"Bearer {federation.tenant.token(Role.VIEWER)}"
    assert [r.authorization for r in federation.chimera.requests] == [token]


async def test_billings_invoices_get_their_campaign_and_agent_from_one_entities_request(
    federation: Federation,
) -> None:
    body = await federation.query(INVOICES_WITH_CAMPAIGNS, federation.tenant.token(Role.VIEWER))
    only_foreign_campaign_missing(body)
    invoices = {i["number"]: i for i in body["data"]["invoices"]}
    assert invoices["INV-1"]["campaign"] == {"id": federation.campaigns[0], "name": "c0"}
    assert invoices["INV-2"]["campaign"] == {"id": federation.campaigns[1], "name": "c1"}
    assert invoices["INV-1"]["preparedBy"] == {"id": federation.agents[0], "name": "a0"}
    assert invoices["INV-2"]["preparedBy"] == {"id": federation.agents[1], "name": "a1"}
    # Another tenant's campaign is not found for this caller: the token bound the tenant.
    assert invoices["INV-3"]["campaign"] is None
    [fetch] = federation.chimera.entities_requests()
    assert fetch.authorization == f"Bearer {federation.tenant.token(Role.VIEWER)}"


async def test_each_query_level_is_one_entities_request_to_chimera_not_one_per_row(
    federation: Federation,
) -> None:
    body = await federation.query(TWO_LEVELS, federation.tenant.token(Role.VIEWER))
    only_foreign_campaign_missing(body)
    by_number = {i["number"]: i for i in body["data"]["invoices"]}
    assert by_number["INV-1"]["campaign"]["invoice"] == {"number": "INV-1"}
    assert by_number["INV-3"]["campaign"] is None
    # Level 1: invoices' campaigns (with their agents) from Chimera; level 2: their invoices
    # from billing. Three invoices, one request to Chimera.
    assert len(federation.chimera.entities_requests()) == 1
    assert len(federation.chimera.requests) == 1


async def test_without_a_token_chimera_answers_nothing_through_the_gateway(
    federation: Federation,
) -> None:
    body = await federation.query(CAMPAIGNS_WITH_INVOICES, None)
    assert body.get("data") is None or body["data"].get("campaigns") is None, body
    assert body["errors"], body
    assert [r.authorization for r in federation.chimera.requests] == [None]


def test_the_supergraph_docker_compose_serves_is_current(gateway_packages: Path) -> None:
    assert SUPERGRAPH.read_text() == supergraph_sdl(), (
        "deploy/gateway/supergraph.graphql is stale: run `make supergraph` and commit it"
    )
