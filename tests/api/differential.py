"""The two executors side by side: one app on planned execution, its twin on stock
Strawberry execution over the same stores, and the data both are asked about.

The twin shares the first app's stores (and so its databases, Redis and object store), so
any difference in a response can only come from execution.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    parse,
)
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings
from app.stores.redis import keys
from tests.api.media_flow import complete, request_upload, upload
from tests.indexing import index_everything
from tests.support import TenantClient, start_tasks

ROOT = Path(__file__).resolve().parents[2]


def stock_twin(app: Starlette, settings: Settings) -> Starlette:
    """An app serving the same stores with planned execution turned off."""
    twin = create_app(settings.model_copy(update={"fast_execution": False}))
    twin.state.stores = app.state.stores
    twin.state.hub = app.state.hub
    return twin


@dataclass
class Seeded:
    tenant: TenantClient
    campaigns: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    memories: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [*self.campaigns, *self.agents, *self.media, *self.memories]


CREATE_CAMPAIGN = """mutation($name: String!, $goal: String!, $budget: Decimal!,
                             $startsAt: DateTime, $endsAt: DateTime) {
  createCampaign(input: {name: $name, goal: $goal, budget: $budget,
                         startsAt: $startsAt, endsAt: $endsAt}) { campaign { id } } }"""
CREATE_AGENT = """mutation($name: String!, $persona: String!, $status: AgentStatus!) {
  createAgent(input: {name: $name, persona: $persona, status: $status}) { agent { id } } }"""
STATUS = """mutation($id: ID!, $status: CampaignStatus!) {
  setCampaignStatus(input: {id: $id, status: $status}) { campaign { id } } }"""
ASSIGN = """mutation($c: ID!, $a: [ID!]!) {
  assignAgents(input: {campaignId: $c, agentIds: $a}) { campaign { id } } }"""
MEMORY = """mutation($a: ID!, $t: String!) {
  addAgentMemory(input: {agentId: $a, text: $t}) { memory { id } } }"""

GOALS = [
    "Launch the spring sneaker line to students",
    "Sustainable fashion made from recycled fabrics",
    "Grow newsletter sign-ups for the coffee subscription",
    "Holiday gift guide for outdoor gear",
    "Summer festival tickets for young families",
    "Back to school stationery bundle",
]
STATUSES = ["DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "ARCHIVED"]
PATHS = {  # from DRAFT, through the allowed transitions
    "DRAFT": [],
    "ACTIVE": ["ACTIVE"],
    "PAUSED": ["ACTIVE", "PAUSED"],
    "COMPLETED": ["ACTIVE", "COMPLETED"],
    "ARCHIVED": ["ARCHIVED"],
}


async def seed(app: Starlette, tenant: TenantClient, http: httpx.AsyncClient) -> Seeded:
    """Campaigns of every status (some with dates, some without), agents of every status
    assigned 0 to 4 per campaign, READY and PENDING media, memories, engagement counters
    for some campaigns and task counts for some agents, everything indexed."""
    seeded = Seeded(tenant)
    for i in range(7):
        status = ["ACTIVE", "PAUSED", "RETIRED"][i % 3]
        data = await tenant.data(
            CREATE_AGENT, {"name": f"Agent {i}", "persona": f"Persona {i}", "status": status}
        )
        seeded.agents.append(data["createAgent"]["agent"]["id"])
    for i, goal in enumerate(GOALS * 2):
        dated = i % 3 != 0
        data = await tenant.data(
            CREATE_CAMPAIGN,
            {
                "name": f"Campaign {i:02d} {goal.split()[0]}",
                "goal": goal,
                "budget": f"{i * 125}.{i % 10}0",
                "startsAt": f"2026-0{1 + i % 9}-01T09:00:00+00:00" if dated else None,
                "endsAt": f"2026-1{i % 3}-01T09:00:00+00:00" if dated else None,
            },
        )
        campaign = data["createCampaign"]["campaign"]["id"]
        seeded.campaigns.append(campaign)
        assignable = [a for n, a in enumerate(seeded.agents) if n % 3 != 2]  # not RETIRED
        members = [assignable[(i + k) % len(assignable)] for k in range(i % 5)]
        if members:
            await tenant.data(ASSIGN, {"c": campaign, "a": members})
        for status in PATHS[STATUSES[i % 5]]:
            await tenant.data(STATUS, {"id": campaign, "status": status})
    for i, campaign in enumerate(seeded.campaigns[:4]):
        for j in range(i + 1):
            ticket = await request_upload(tenant, campaign, filename=f"shot {i}-{j}.png")
            asset = ticket["asset"]["id"]
            seeded.media.append(asset)
            if j % 2 == 0:  # odd ones stay PENDING
                assert (await upload(http, ticket)).status_code == 200
                await complete(tenant, asset)
    for i, agent in enumerate(seeded.agents[:4]):
        for j in range(i):
            data = await tenant.data(MEMORY, {"a": agent, "t": f"{GOALS[j]} went well"})
            seeded.memories.append(data["addAgentMemory"]["memory"]["id"])
    redis = app.state.stores.redis
    from app.ids import decode_id

    for i, campaign in enumerate(seeded.campaigns[::2]):
        await redis.hset(
            keys.campaign_engagement(tenant.id, decode_id(campaign, "Campaign")),
            mapping={name: i * 7 + n for n, name in enumerate(keys.ENGAGEMENT_FIELDS)},
        )
    for i, agent in enumerate(seeded.agents[::3]):
        await start_tasks(redis, tenant.id, decode_id(agent, "Agent"), i)
    await index_everything(app)
    return seeded


# -- the corpus: every query in the tests and the README --------------------------------


# Test modules whose queries are written for a schema of their own, not for this API.
OTHER_SCHEMAS = frozenset({"test_planned_execution.py"})


def corpus() -> list[str]:
    """Query documents found as string literals in the test suite and in the README."""
    found: dict[str, None] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name in OTHER_SCHEMAS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                _keep(node.value, found)
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```graphql\n(.*?)```", readme, re.S):
        _keep(block, found)
    for payload in re.findall(r"-d '(\{.*?\})'", readme):
        _keep(json.loads(payload)["query"], found)
    return list(found)


# Fields whose values are the caller's live state, different between any two requests
# (a rate-limit bucket as of this request), whichever executor ran them.
LIVE_FIELDS = ("rateLimit",)


def _keep(text: str, found: dict[str, None]) -> None:
    if "{" not in text or any(name in text for name in LIVE_FIELDS):
        return
    try:
        document = parse(text)
    except GraphQLError:
        return
    for definition in document.definitions:
        if (
            isinstance(definition, OperationDefinitionNode)
            and definition.operation is OperationType.QUERY
        ):
            found[_single(document, definition)] = None


def _single(document: DocumentNode, operation: OperationDefinitionNode) -> str:
    """The operation with the document's fragments, as one document of its own."""
    from graphql import FragmentDefinitionNode, print_ast

    fragments = [d for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    return "\n".join(print_ast(node) for node in (operation, *fragments))


def variables_for(query: str, seeded: Seeded) -> Iterator[dict[str, Any]]:
    """Plausible values for an operation's variables (a seeded id for an id, a small
    number for a count), and once with every nullable variable left out."""
    operation = next(d for d in parse(query).definitions if isinstance(d, OperationDefinitionNode))
    values: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        values[name] = _value_for(name, _type_name(definition.type), seeded)
    yield values
    if values:
        yield {}


def _type_name(node: Any) -> str:
    while hasattr(node, "type"):
        node = node.type
    return str(node.name.value)


def _value_for(name: str, type_name: str, seeded: Seeded) -> Any:
    lowered = name.lower()
    if type_name == "ID":
        if "agent" in lowered:
            return seeded.agents[1]
        if "media" in lowered or "asset" in lowered:
            return seeded.media[0]
        if "ids" in lowered:
            return seeded.ids[:5]
        return seeded.campaigns[2]
    if type_name == "Int":
        return 3
    if type_name == "Float":
        return [0.05] * 384 if "v" in lowered else 0.5
    if type_name == "String":
        return "spring sneakers" if lowered in {"q", "query", "text"} else "Camp"
    if type_name == "Boolean":
        return True
    if type_name in {"CampaignStatus", "AgentStatus"}:
        return ["ACTIVE"]
    if type_name == "SearchType":
        return ["CAMPAIGN", "AGENT"]
    return None


def _first_null(data: Any, path: list[Any]) -> tuple[Any, ...]:
    """The highest position on ``path`` whose value in ``data`` is null."""
    value = data
    for depth, key in enumerate(path):
        if value is None:
            return tuple(path[:depth])
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return tuple(path)
    return tuple(path)


def _errors(body: Any) -> tuple[list[str], dict[tuple[Any, ...], int]]:
    """A response's errors in two parts.

    - Errors that are the reason their own position is null (their path is the first null
      on the way down): these must be the same, in any order. GraphQL gives the order of
      errors no meaning, and on the stock executor it is the order in which tasks happened
      to finish.
    - Errors below a position that another error nulled by propagation (a non-null field
      failed further down): how many of those are reported depends, on graphql-core 3.3,
      on which sibling tasks ran before the propagation cancelled the rest; the
      specification allows reporting any of them. For each such position, both must
      report at least one.
    """
    own: list[str] = []
    below: dict[tuple[Any, ...], int] = {}
    data = body.get("data")
    for error in body.get("errors") or []:
        path = error.get("path")
        if path is None:
            own.append(json.dumps(error, sort_keys=True))
            continue
        top = _first_null(data, path)
        if top == tuple(path):
            own.append(json.dumps(error, sort_keys=True))
        else:
            below[top] = below.get(top, 0) + 1
    return sorted(own), below


# What a response's cost says of the operation; the rest (the buckets after it) depends on
# when it ran and what ran before.
COST_KEYS = ("requested", "actual", "maximum", "byStore", "throttled")


def _others(body: Any) -> dict[str, Any]:
    """A response's entries besides data and errors, its cost reduced to the operation's."""
    others = {k: v for k, v in body.items() if k not in {"data", "errors"}}
    extensions = dict(others.get("extensions") or {})
    if "cost" in extensions:
        extensions["cost"] = {k: extensions["cost"].get(k) for k in COST_KEYS}
        others["extensions"] = extensions
    return others


def assert_same(fast: Any, stock: Any, what: object) -> None:
    """The same status, the same data down to the order of keys, and the same errors (see
    ``_errors`` for what "same" means for errors under a null propagated from below)."""
    (fast_status, fast_body), (stock_status, stock_body) = fast, stock
    problems = []
    if fast_status != stock_status:
        problems.append(f"status {fast_status} != {stock_status}")
    if json.dumps(fast_body.get("data")) != json.dumps(stock_body.get("data")):
        problems.append("data differ")
    if _others(fast_body) != _others(stock_body):
        problems.append("other entries differ")
    fast_own, fast_below = _errors(fast_body)
    stock_own, stock_below = _errors(stock_body)
    if fast_own != stock_own:
        problems.append("errors differ")
    if set(fast_below) != set(stock_below):
        problems.append("errors under propagated nulls differ")
    if not problems:
        return
    import difflib

    a = json.dumps(fast_body, indent=1).splitlines()
    b = json.dumps(stock_body, indent=1).splitlines()
    diff = "\n".join(difflib.unified_diff(a, b, "planned", "stock", lineterm="", n=4))
    raise AssertionError(f"{'; '.join(problems)}\n{what}\n{diff[:6000]}")


@dataclass
class Pair:
    fast: httpx.AsyncClient
    stock: httpx.AsyncClient

    async def both(
        self, tenant: TenantClient, query: str, variables: dict[str, Any] | None = None
    ) -> tuple[Any, Any]:
        body = {"query": query, "variables": variables or {}}
        headers = {"Authorization": f"Bearer {tenant.token()}"}
        fast = await self.fast.post("/graphql", json=body, headers=headers)
        stock = await self.stock.post("/graphql", json=body, headers=headers)
        return (fast.status_code, fast.json()), (stock.status_code, stock.json())


async def clients(fast: Starlette, stock: Starlette) -> AsyncIterator[Pair]:
    transport = httpx.ASGITransport
    async with (
        httpx.AsyncClient(transport=transport(app=fast), base_url="http://test") as one,
        httpx.AsyncClient(transport=transport(app=stock), base_url="http://test") as two,
    ):
        yield Pair(one, two)
