"""Bad input never breaks the server: no 500, no traceback, a public error code, no writes.

Every request here is wrong in some way a careless or hostile client could make it wrong: at
the HTTP layer (bodies that are not a GraphQL request), in the GraphQL document (unknown
fields, too deep, too many aliases or tokens) or in the values (ids, cursors, page sizes,
names, money, dates, status transitions). Each must answer with one of the public
``extensions.code`` values, the specific one the contract names, and leave every stored row
as it was. Property tests then throw arbitrary text at names, ids and cursors.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from httpx import ASGITransport, AsyncClient, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.types import Message

from app.auth import Role
from app.ids import encode_id
from app.stores.postgres.tables import agent, audit_log, campaign, campaign_agent, outbox
from tests.api.differential import stock_twin
from tests.support import TenantClient, error_codes

PUBLIC_CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "RATE_LIMITED",
    "OPERATION_LIMIT",
    "STORE_UNAVAILABLE",
    "INTERNAL_SERVER_ERROR",
}

PROPERTY = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

CREATE_AGENT = """
mutation ($name: String!, $persona: String! = "") {
  createAgent(input: {name: $name, persona: $persona}) { agent { id name } }
}
"""
CREATE_CAMPAIGN = """
mutation ($name: String!, $goal: String! = "", $budget: Decimal! = "0",
          $startsAt: DateTime, $endsAt: DateTime) {
  createCampaign(input: {name: $name, goal: $goal, budget: $budget,
                         startsAt: $startsAt, endsAt: $endsAt}) {
    campaign { id name budget startsAt endsAt }
  }
}
"""
UPDATE_AGENT = """
mutation ($id: ID!, $name: String, $persona: String) {
  updateAgent(input: {id: $id, name: $name, persona: $persona}) { agent { id name } }
}
"""
UPDATE_CAMPAIGN = """
mutation ($id: ID!, $name: String, $goal: String, $budget: Decimal, $endsAt: DateTime) {
  updateCampaign(input: {id: $id, name: $name, goal: $goal, budget: $budget, endsAt: $endsAt}) {
    campaign { id name }
  }
}
"""
SET_STATUS = """
mutation ($id: ID!, $status: CampaignStatus!) {
  setCampaignStatus(input: {id: $id, status: $status}) { campaign { id status } }
}
"""
ASSIGN = """
mutation ($campaignId: ID!, $agentIds: [ID!]!) {
  assignAgents(input: {campaignId: $campaignId, agentIds: $agentIds}) { campaign { id } }
}
"""
UNASSIGN = """
mutation ($campaignId: ID!, $agentId: ID!) {
  unassignAgent(input: {campaignId: $campaignId, agentId: $agentId}) { campaign { id } }
}
"""


# --- helpers ---------------------------------------------------------------------------------


def sane(response: Response) -> dict[str, Any]:
    """The response is a JSON GraphQL answer, not a crash, and names only public codes."""
    assert response.status_code != 500, response.text
    assert "Traceback" not in response.text, response.text
    assert 'File "' not in response.text, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body, dict), body
    for code in error_codes(body):
        assert code in PUBLIC_CODES, body
    return body


def b64(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def auth(tenant: TenantClient, role: Role = Role.EDITOR) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.token(role)}"}


async def counts(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, int]:
    """How many rows the tenant has in every table a mutation writes to."""
    tables: list[Table] = [agent, campaign, campaign_agent, audit_log, outbox]
    out: dict[str, int] = {}
    async with engine.connect() as conn:
        for table in tables:
            query = select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
            out[table.name] = int((await conn.execute(query)).scalar_one())
    return out


async def rows(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """The tenant's agents and campaigns, whole, to show an update changed nothing."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        for table in (agent, campaign, campaign_agent):
            order = [table.c[c] for c in ("id", "campaign_id", "agent_id") if c in table.c]
            result = await conn.execute(
                select(table).where(table.c.tenant_id == tenant_id).order_by(*order)
            )
            out[table.name] = [dict(r._mapping) for r in result]
    return out


async def seed(tenant: TenantClient) -> tuple[str, str]:
    """One agent assigned to one DRAFT campaign; returns (agent id, campaign id)."""
    agent_id = (await tenant.data(CREATE_AGENT, {"name": "seed agent"}))["createAgent"]["agent"][
        "id"
    ]
    campaign_id = (
        await tenant.data(
            CREATE_CAMPAIGN,
            {"name": "seed campaign", "startsAt": "2030-01-01T00:00:00+00:00"},
        )
    )["createCampaign"]["campaign"]["id"]
    await tenant.data(ASSIGN, {"campaignId": campaign_id, "agentIds": [agent_id]})
    return agent_id, campaign_id


def pk_of(global_id: str) -> uuid.UUID:
    padded = global_id + "=" * (-len(global_id) % 4)
    return uuid.UUID(base64.urlsafe_b64decode(padded).decode().partition(":")[2])


async def expect_refused(
    tenant: TenantClient,
    engine: AsyncEngine,
    query: str,
    variables: dict[str, Any],
    codes: set[str],
) -> dict[str, Any]:
    """Run ``query``; it must fail with one of ``codes`` only and leave every row as it was."""
    before_counts = await counts(engine, tenant.id)
    before_rows = await rows(engine, tenant.id)
    body = sane(await tenant.post(query, variables))
    found = error_codes(body)
    assert found, body
    assert set(found) <= codes, body
    data = body.get("data")
    assert data is None or all(v is None for v in data.values()), body
    assert await counts(engine, tenant.id) == before_counts
    assert await rows(engine, tenant.id) == before_rows
    return body


# --- the HTTP layer --------------------------------------------------------------------------

CREATE_BODY = json.dumps({"query": 'mutation { createAgent(input: {name: "x"}) { agent { id } } }'})

NOT_A_GRAPHQL_REQUEST: dict[str, tuple[bytes, str | None]] = {
    "malformed-json": (b'{"query": "{ agents { totalCount } }"', "application/json"),
    "truncated-json": (b'{"query":', "application/json"),
    "json-with-trailing-garbage": (CREATE_BODY.encode() + b"}}", "application/json"),
    "invalid-utf8": (b'{"query": "\xff\xfe{ agents { totalCount } }"}', "application/json"),
    "text-plain-query": (b"{ agents { totalCount } }", "text/plain"),
    "text-plain-with-a-json-mutation": (CREATE_BODY.encode(), "text/plain"),
    "form-encoded": (
        b"query=%7B+agents+%7B+totalCount+%7D+%7D",
        "application/x-www-form-urlencoded",
    ),
    "multipart-without-uploads": (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
    "no-content-type": (CREATE_BODY.encode(), None),
    "empty-json": (b"", "application/json"),
    "empty-no-content-type": (b"", None),
    "whitespace-only": (b"   \n ", "application/json"),
    "json-empty-list": (b"[]", "application/json"),
    "json-batch-list": (f"[{CREATE_BODY}, {CREATE_BODY}]".encode(), "application/json"),
    "json-list-of-numbers": (b"[1, 2]", "application/json"),
    "json-number": (b"42", "application/json"),
    "json-string": (b'"{ agents { totalCount } }"', "application/json"),
    "json-null": (b"null", "application/json"),
    "json-true": (b"true", "application/json"),
    "json-empty-object": (b"{}", "application/json"),
    # Longer than Python converts (4,300 digits): json.loads raises a plain ValueError.
    "json-integer-of-5000-digits": (
        b'{"query": "{ agents(first: $n) { totalCount } }", "variables": {"n": '
        + b"9" * 5000
        + b"}}",
        "application/json",
    ),
    "query-is-a-number": (b'{"query": 123}', "application/json"),
    "query-is-an-object": (b'{"query": {"agents": 1}}', "application/json"),
    "query-is-a-list": (b'{"query": ["{ agents { totalCount } }"]}', "application/json"),
    "query-is-null": (b'{"query": null}', "application/json"),
    "query-is-empty": (b'{"query": ""}', "application/json"),
    "variables-is-a-list": (
        b'{"query": "{ agents { totalCount } }", "variables": [1]}',
        "application/json",
    ),
    "variables-is-a-string": (
        b'{"query": "{ agents { totalCount } }", "variables": "{}"}',
        "application/json",
    ),
    "operation-name-is-a-number": (
        b'{"query": "{ agents { totalCount } }", "operationName": 7}',
        "application/json",
    ),
    "operation-name-is-unknown": (
        b'{"query": "{ agents { totalCount } }", "operationName": "Nope"}',
        "application/json",
    ),
    "extensions-is-a-list": (
        b'{"query": "{ agents { totalCount } }", "extensions": []}',
        "application/json",
    ),
}


@pytest.mark.parametrize("case", list(NOT_A_GRAPHQL_REQUEST))
async def test_a_body_that_is_not_a_graphql_request_is_a_json_bad_user_input_error(
    http: AsyncClient, tenant: TenantClient, engine: AsyncEngine, case: str
) -> None:
    content, content_type = NOT_A_GRAPHQL_REQUEST[case]
    headers = auth(tenant)
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = await counts(engine, tenant.id)

    response = await http.post("/graphql", content=content, headers=headers)

    body = sane(response)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body.get("data") is None
    assert await counts(engine, tenant.id) == before


async def test_a_query_sent_with_get_and_no_preflight_header_is_refused_as_json(
    http: AsyncClient,
) -> None:
    response = await http.get(
        "/graphql",
        params={"query": "{ agents { totalCount } }"},
        headers={"Accept": "application/json"},
    )
    body = sane(response)
    assert response.status_code == 400
    assert error_codes(body) == ["BAD_USER_INPUT"], body


async def test_a_mutation_sent_with_get_is_refused_and_writes_nothing(
    http: AsyncClient, tenant: TenantClient, engine: AsyncEngine
) -> None:
    before = await counts(engine, tenant.id)
    response = await http.get(
        "/graphql",
        params={"query": 'mutation { createAgent(input: {name: "x"}) { agent { id } } }'},
        headers={**auth(tenant), "Accept": "application/json"},
    )
    body = sane(response)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert await counts(engine, tenant.id) == before


def _oversized_create(app: Starlette) -> bytes:
    limit: int = app.state.settings.max_body_bytes
    persona = "p" * (limit + 1)
    return json.dumps(
        {"query": CREATE_AGENT, "variables": {"name": "too big", "persona": persona}}
    ).encode()


async def test_a_body_over_the_size_cap_is_413_with_json_errors_and_writes_nothing(
    app: Starlette, http: AsyncClient, tenant: TenantClient, engine: AsyncEngine
) -> None:
    before = await counts(engine, tenant.id)
    response = await http.post(
        "/graphql",
        content=_oversized_create(app),
        headers={**auth(tenant), "Content-Type": "application/json"},
    )
    body = sane(response)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None
    assert await counts(engine, tenant.id) == before


async def test_a_chunked_body_over_the_size_cap_is_cut_off_with_413(
    app: Starlette, http: AsyncClient, tenant: TenantClient, engine: AsyncEngine
) -> None:
    payload = _oversized_create(app)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    before = await counts(engine, tenant.id)
    response = await http.post(
        "/graphql",
        content=chunks(),
        headers={**auth(tenant), "Content-Type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    body = sane(response)
    assert response.status_code == 413
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await counts(engine, tenant.id) == before


async def test_a_body_just_under_the_size_cap_is_still_served(
    app: Starlette, http: AsyncClient, tenant: TenantClient
) -> None:
    limit: int = app.state.settings.max_body_bytes
    skeleton = json.dumps({"query": "{ agents { totalCount } }", "variables": {"pad": ""}})
    padded = skeleton.replace('"pad": ""', '"pad": "' + "x" * (limit - len(skeleton)) + '"')
    assert len(padded.encode()) == limit
    response = await http.post(
        "/graphql",
        content=padded.encode(),
        headers={**auth(tenant), "Content-Type": "application/json"},
    )
    body = sane(response)
    assert response.status_code == 200
    assert body["data"] == {"agents": {"totalCount": 0}}


async def test_a_client_that_leaves_before_its_body_arrives_is_logged_as_such_not_as_an_error(
    app: Starlette, tenant: TenantClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"query": CREATE_AGENT, "variables": {"name": "half", "persona": "x"}})
    arriving = [
        {"type": "http.request", "body": body[: len(body) // 2].encode(), "more_body": True}
    ]

    async def receive() -> Message:
        return arriving.pop(0) if arriving else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    headers = {**auth(tenant), "Content-Type": "application/json"}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    before = await counts(engine, tenant.id)
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)  # raised ClientDisconnect: a traceback in the log

    assert sent == []  # no one to answer
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("left before its request body arrived" in r.getMessage() for r in caplog.records)
    access = [r for r in caplog.records if r.name == "chimera.access"]
    assert [getattr(r, "status", None) for r in access] == [499]
    assert await counts(engine, tenant.id) == before


# --- the GraphQL document --------------------------------------------------------------------

INVALID_DOCUMENTS = {
    "unknown-field": "{ agents { edges { node { id nope } } } }",
    "unknown-root-field": "{ secrets }",
    "unknown-argument": "{ agents(limit: 5) { totalCount } }",
    "unknown-input-field": 'mutation { createAgent(input: {name: "x", owner: "y"}) { agent { id } } }',
    "unknown-enum-value": "{ agents(filter: {status: [DELETED]}) { totalCount } }",
    "unknown-fragment-type": '{ node(id: "x") { ... on Secret { id } } }',
    "missing-required-argument": "{ agent { id } }",
    "missing-required-input-field": 'mutation { createAgent(input: {persona: "x"}) { agent { id } } }',
    "scalar-with-selection": "{ agents { totalCount { value } } }",
    "object-without-selection": "{ agents }",
    "syntax-error": "{ agents { totalCount ",
    "not-graphql": "SELECT * FROM agent",
    "string-for-int": '{ agents(first: "ten") { totalCount } }',
    "int-overflow": "{ agents(first: 99999999999) { totalCount } }",
    "null-for-non-null": "{ agent(id: null) { id } }",
    "subscription-not-in-schema": "subscription { campaignEvents { id } }",
    "conflicting-fields": (
        "{ nodes(ids: []) { ... on Agent { status } ... on Campaign { status } } }"
    ),
    "same-alias-different-fields": "{ x: agents { totalCount } x: campaigns { totalCount } }",
    "undefined-variable": "{ agents(first: $n) { totalCount } }",
    "unused-fragment": "fragment F on Agent { id } { agents { totalCount } }",
    "two-anonymous-operations": "{ agents { totalCount } } { campaigns { totalCount } }",
    "introspection-of-unknown-type-field": '{ __type(name: "Agent") { nope } }',
}


@pytest.mark.parametrize("case", list(INVALID_DOCUMENTS))
async def test_an_invalid_document_is_bad_user_input(
    tenant: TenantClient, engine: AsyncEngine, case: str
) -> None:
    before = await counts(engine, tenant.id)
    body = sane(await tenant.post(INVALID_DOCUMENTS[case]))
    assert body.get("data") is None, body
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}, body
    assert await counts(engine, tenant.id) == before


async def test_wrongly_typed_variables_are_bad_user_input(tenant: TenantClient) -> None:
    query = "query ($first: Int, $id: ID!) { agents(first: $first) { totalCount } node(id: $id) { id } }"
    for variables in (
        {"first": "ten", "id": "x"},
        {"first": 1.5, "id": "x"},
        {"first": 2**40, "id": "x"},
        {"first": 1, "id": None},
        {"first": 1, "id": {"nested": True}},
        {"first": 1, "id": ["a", "b"]},
        {"first": 1},
    ):
        body = sane(await tenant.post(query, variables))
        assert body.get("data") is None, (variables, body)
        assert set(error_codes(body)) == {"BAD_USER_INPUT"}, (variables, body)


def _deep_query(levels: int, first: int = 20) -> str:
    """campaigns -> agents -> campaigns ... ``levels`` connections deep, 3 fields per level."""
    fields = ["campaigns" if i % 2 == 0 else "agents" for i in range(levels)]
    inner = "id"
    for field in reversed(fields):
        inner = f"{field}(first: {first}) {{ edges {{ node {{ {inner} }} }} }}"
    return "{ " + inner + " }"


async def test_a_query_deeper_than_the_limit_is_an_operation_limit(
    app: Starlette, tenant: TenantClient
) -> None:
    max_depth: int = app.state.settings.max_query_depth
    body = sane(await tenant.post(_deep_query(max_depth // 3 + 2)))
    assert error_codes(body) == ["OPERATION_LIMIT"], body
    assert body.get("data") is None


async def test_depth_hidden_in_fragments_is_still_an_operation_limit(
    app: Starlette, tenant: TenantClient
) -> None:
    max_depth: int = app.state.settings.max_query_depth
    levels = max_depth // 3 + 2
    fragments = []
    for i in range(levels):
        nxt = f"...F{i + 1}" if i + 1 < levels else "id"
        field = "agents" if i % 2 == 0 else "campaigns"
        kind = "Campaign" if i % 2 == 0 else "Agent"
        fragments.append(
            f"fragment F{i} on {kind} {{ {field} {{ edges {{ node {{ {nxt} }} }} }} }}"
        )
    query = "{ campaigns { edges { node { ...F0 } } } } " + " ".join(fragments)
    body = sane(await tenant.post(query))
    assert error_codes(body) == ["OPERATION_LIMIT"], body


async def test_a_query_within_the_depth_limit_is_served(tenant: TenantClient) -> None:
    # Pages of 5: three levels of default pages (20 x 20 x 20) would be priced over the
    # cost limit (tests/api/test_demand_control.py), which is not what this test is about.
    body = sane(await tenant.post(_deep_query(3, first=5)))
    assert not body.get("errors"), body


async def test_too_many_aliases_is_an_operation_limit(app: Starlette, tenant: TenantClient) -> None:
    max_aliases: int = app.state.settings.max_aliases
    aliases = " ".join(f"a{i}: agents {{ totalCount }}" for i in range(max_aliases + 1))
    body = sane(await tenant.post("{ " + aliases + " }"))
    assert error_codes(body) == ["OPERATION_LIMIT"], body
    assert body.get("data") is None


async def test_too_many_aliased_mutations_is_an_operation_limit_and_writes_nothing(
    app: Starlette, tenant: TenantClient, engine: AsyncEngine
) -> None:
    max_aliases: int = app.state.settings.max_aliases
    aliases = " ".join(
        f'm{i}: createAgent(input: {{name: "a{i}"}}) {{ agent {{ id }} }}'
        for i in range(max_aliases + 1)
    )
    before = await counts(engine, tenant.id)
    body = sane(await tenant.post("mutation { " + aliases + " }"))
    assert error_codes(body) == ["OPERATION_LIMIT"], body
    assert await counts(engine, tenant.id) == before


async def test_a_document_with_too_many_tokens_is_an_operation_limit(
    app: Starlette, tenant: TenantClient
) -> None:
    max_tokens: int = app.state.settings.max_tokens
    fields = " ".join("totalCount" for _ in range(max_tokens))
    body = sane(await tenant.post("{ agents { " + fields + " } }"))
    assert error_codes(body) == ["OPERATION_LIMIT"], body
    assert body.get("data") is None


# --- ids -------------------------------------------------------------------------------------

BAD_IDS = {
    "garbage": "not an id!",
    "empty": "",
    "whitespace": "   ",
    "raw-uuid": str(uuid.UUID(int=1)),
    "raw-type-and-uuid": f"Agent:{uuid.UUID(int=1)}",
    "base64-of-text": b64("hello world"),
    "base64-without-colon": b64(str(uuid.UUID(int=1))),
    "base64-bad-uuid": b64("Agent:not-a-uuid"),
    "base64-empty-uuid": b64("Agent:"),
    "base64-unknown-type": b64(f"Secret:{uuid.UUID(int=1)}"),
    "base64-invalid-utf8": b64(b"\xff\xfe\xfd:\x00"),
    "base64-nul-bytes": b64("Agent\x00:" + str(uuid.UUID(int=1))),
    "non-ascii": "Agënt:ü",
    "emoji": "\U0001f600" * 10,
    "nul-byte": "\x00",
    "too-long": "A" * 10_000,
    "sql": "' OR 1=1 --",
    "bad-padding": "QWdlbnQ6===",
}

ID_QUERIES = {
    "node": ("query ($id: ID!) { node(id: $id) { id } }", "node"),
    "agent": ("query ($id: ID!) { agent(id: $id) { id } }", "agent"),
    "campaign": ("query ($id: ID!) { campaign(id: $id) { id } }", "campaign"),
}


@pytest.mark.parametrize("id_case", list(BAD_IDS))
@pytest.mark.parametrize("query_case", list(ID_QUERIES))
async def test_an_invalid_id_in_a_query_is_bad_user_input(
    tenant: TenantClient, query_case: str, id_case: str
) -> None:
    query, field = ID_QUERIES[query_case]
    body = sane(await tenant.post(query, {"id": BAD_IDS[id_case]}))
    assert body.get("data") in (None, {field: None}), body
    assert error_codes(body) == ["BAD_USER_INPUT"], body


def _id_mutations(good_agent: str, good_campaign: str, bad: str) -> dict[str, tuple[str, Any]]:
    return {
        "updateAgent": (UPDATE_AGENT, {"id": bad, "name": "renamed"}),
        "updateCampaign": (UPDATE_CAMPAIGN, {"id": bad, "name": "renamed"}),
        "setCampaignStatus": (SET_STATUS, {"id": bad, "status": "ACTIVE"}),
        "assignAgents-campaignId": (ASSIGN, {"campaignId": bad, "agentIds": [good_agent]}),
        "assignAgents-agentIds": (ASSIGN, {"campaignId": good_campaign, "agentIds": [bad]}),
        "assignAgents-one-bad-among-good": (
            ASSIGN,
            {"campaignId": good_campaign, "agentIds": [good_agent, bad]},
        ),
        "unassignAgent-campaignId": (UNASSIGN, {"campaignId": bad, "agentId": good_agent}),
        "unassignAgent-agentId": (UNASSIGN, {"campaignId": good_campaign, "agentId": bad}),
    }


MUTATION_CASES = list(_id_mutations("a", "c", "x"))
AGENT_SLOTS = {
    "updateAgent",
    "assignAgents-agentIds",
    "assignAgents-one-bad-among-good",
    "unassignAgent-agentId",
}


@pytest.mark.parametrize(
    "id_case", ["garbage", "base64-bad-uuid", "base64-unknown-type", "too-long"]
)
@pytest.mark.parametrize("mutation_case", MUTATION_CASES)
async def test_an_invalid_id_in_a_mutation_is_bad_user_input_and_writes_nothing(
    tenant: TenantClient, engine: AsyncEngine, mutation_case: str, id_case: str
) -> None:
    agent_id, campaign_id = await seed(tenant)
    query, variables = _id_mutations(agent_id, campaign_id, BAD_IDS[id_case])[mutation_case]
    await expect_refused(tenant, engine, query, variables, {"BAD_USER_INPUT"})


async def test_an_id_of_the_wrong_type_never_returns_an_object_of_another_type(
    tenant: TenantClient,
) -> None:
    agent_id, campaign_id = await seed(tenant)
    agent_pk, campaign_pk = pk_of(agent_id), pk_of(campaign_id)
    cases = [
        ("query ($id: ID!) { campaign(id: $id) { id } }", agent_id, "campaign"),
        ("query ($id: ID!) { agent(id: $id) { id } }", campaign_id, "agent"),
    ]
    for query, global_id, field in cases:
        body = sane(await tenant.post(query, {"id": global_id}))
        assert body.get("data") in (None, {field: None}), body
        assert set(error_codes(body)) <= {"BAD_USER_INPUT", "NOT_FOUND"}, body
        assert error_codes(body), body

    # An id that claims one type but carries another type's key finds nothing.
    for forged in (
        encode_id("Agent", campaign_pk),
        encode_id("Campaign", agent_pk),
        encode_id("Tenant", agent_pk),
        encode_id("Tenant", campaign_pk),
    ):
        body = sane(
            await tenant.post(
                "query ($id: ID!) { node(id: $id) { id __typename } nodes(ids: [$id]) { id } }",
                {"id": forged},
            )
        )
        assert body["data"] == {"node": None, "nodes": [None]} and "errors" not in body, body


@pytest.mark.parametrize("mutation_case", MUTATION_CASES)
async def test_an_id_of_the_wrong_type_in_a_mutation_is_refused_and_writes_nothing(
    tenant: TenantClient, engine: AsyncEngine, mutation_case: str
) -> None:
    agent_id, campaign_id = await seed(tenant)
    # The wrong type for each slot: a campaign's id where an agent's is wanted, and vice versa.
    wrong = campaign_id if mutation_case in AGENT_SLOTS else agent_id
    query, variables = _id_mutations(agent_id, campaign_id, wrong)[mutation_case]
    await expect_refused(tenant, engine, query, variables, {"BAD_USER_INPUT", "NOT_FOUND"})


async def test_a_well_formed_id_that_does_not_exist_is_null_or_not_found(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    agent_id, campaign_id = await seed(tenant)
    ghost_agent = encode_id("Agent", uuid.uuid4())
    ghost_campaign = encode_id("Campaign", uuid.uuid4())
    data = await tenant.data(
        "query ($a: ID!, $c: ID!) { agent(id: $a) { id } campaign(id: $c) { id }"
        " node(id: $a) { id } nodes(ids: [$a, $c]) { id } }",
        {"a": ghost_agent, "c": ghost_campaign},
    )
    assert data == {"agent": None, "campaign": None, "node": None, "nodes": [None, None]}
    for query, variables in (
        (UPDATE_AGENT, {"id": ghost_agent, "name": "x"}),
        (UPDATE_CAMPAIGN, {"id": ghost_campaign, "name": "x"}),
        (SET_STATUS, {"id": ghost_campaign, "status": "ACTIVE"}),
        (ASSIGN, {"campaignId": ghost_campaign, "agentIds": [agent_id]}),
        (ASSIGN, {"campaignId": campaign_id, "agentIds": [ghost_agent]}),
        (UNASSIGN, {"campaignId": campaign_id, "agentId": ghost_agent}),
        (UNASSIGN, {"campaignId": ghost_campaign, "agentId": agent_id}),
    ):
        await expect_refused(tenant, engine, query, variables, {"NOT_FOUND"})


async def test_too_many_ids_in_nodes_or_assign_agents_is_bad_user_input(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    _, campaign_id = await seed(tenant)
    many = [encode_id("Agent", uuid.uuid4()) for _ in range(101)]
    body = sane(
        await tenant.post("query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": many})
    )
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    await expect_refused(
        tenant, engine, ASSIGN, {"campaignId": campaign_id, "agentIds": many}, {"BAD_USER_INPUT"}
    )
    await expect_refused(
        tenant, engine, ASSIGN, {"campaignId": campaign_id, "agentIds": []}, {"BAD_USER_INPUT"}
    )


# --- cursors and page sizes ------------------------------------------------------------------

BAD_CURSORS = {
    "garbage": "not a cursor!",
    "empty": "",
    "non-ascii": "cürsör",
    "nul-byte": "\x00",
    "too-long": "A" * 10_000,
    "base64-of-text": b64("hello"),
    "base64-invalid-utf8": b64(b"\xff\xfe\xfd"),
    "json-object": b64('{"order": "created_at:asc"}'),
    "json-empty-list": b64("[]"),
    "json-numbers": b64("[1, 2, 3]"),
    "json-two-items": b64('["created_at:asc", "2024-01-01T00:00:00+00:00"]'),
    "json-null": b64("null"),
    "bad-time": b64(f'["created_at:asc", "yesterday", "{uuid.UUID(int=1)}"]'),
    "naive-time": b64(f'["created_at:asc", "2024-01-01T00:00:00", "{uuid.UUID(int=1)}"]'),
    "bad-uuid": b64('["created_at:asc", "2024-01-01T00:00:00+00:00", "nope"]'),
    "unknown-order": b64(f'["shoe_size:asc", "2024-01-01T00:00:00+00:00", "{uuid.UUID(int=1)}"]'),
}

CURSOR_QUERIES = {
    "agents": "query ($after: String) { agents(after: $after) { edges { node { id } } } }",
    "campaigns": "query ($after: String) { campaigns(after: $after) { edges { node { id } } } }",
    "campaign-agents": (
        "query ($id: ID!, $after: String) { campaign(id: $id) { agents(after: $after) {"
        " edges { node { id } } } } }"
    ),
    "agent-campaigns": (
        "query ($id: ID!, $after: String) { agent(id: $id) { campaigns(after: $after) {"
        " edges { node { id } } } } }"
    ),
}


async def _cursor_request(
    tenant: TenantClient, query_case: str, cursor: str, ids: tuple[str, str]
) -> dict[str, Any]:
    agent_id, campaign_id = ids
    variables: dict[str, Any] = {"after": cursor}
    if query_case == "campaign-agents":
        variables["id"] = campaign_id
    if query_case == "agent-campaigns":
        variables["id"] = agent_id
    return sane(await tenant.post(CURSOR_QUERIES[query_case], variables))


@pytest.mark.parametrize("cursor_case", list(BAD_CURSORS))
@pytest.mark.parametrize("query_case", list(CURSOR_QUERIES))
async def test_an_invalid_cursor_is_bad_user_input(
    tenant: TenantClient, query_case: str, cursor_case: str
) -> None:
    ids = await seed(tenant)
    body = await _cursor_request(tenant, query_case, BAD_CURSORS[cursor_case], ids)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert "edges" not in json.dumps(body.get("data")), body


async def test_a_cursor_from_another_ordering_is_bad_user_input(tenant: TenantClient) -> None:
    _, campaign_id = await seed(tenant)
    await tenant.data(CREATE_AGENT, {"name": "second"})

    async def end_cursor(query: str, variables: dict[str, Any] | None = None) -> str:
        data = await tenant.data(query, variables)
        value = data
        while "pageInfo" not in value:
            value = next(v for v in value.values() if isinstance(v, dict))
        cursor: str = value["pageInfo"]["endCursor"]
        return cursor

    by_name = await end_cursor(
        "{ agents(first: 1, orderBy: {field: NAME}) { pageInfo { endCursor } } }"
    )
    by_created = await end_cursor("{ agents(first: 1) { pageInfo { endCursor } } }")
    by_created_desc = await end_cursor(
        "{ agents(first: 1, orderBy: {direction: DESC}) { pageInfo { endCursor } } }"
    )
    by_updated = await end_cursor(
        "{ agents(first: 1, orderBy: {field: UPDATED_AT}) { pageInfo { endCursor } } }"
    )
    edge = await end_cursor(
        "query ($id: ID!) { campaign(id: $id) { agents(first: 1) { pageInfo { endCursor } } } }",
        {"id": campaign_id},
    )
    mismatches = [
        ("CREATED_AT", "ASC", by_name),
        ("NAME", "ASC", by_created),
        ("CREATED_AT", "DESC", by_created),
        ("CREATED_AT", "ASC", by_created_desc),
        ("UPDATED_AT", "ASC", by_created),
        ("CREATED_AT", "ASC", by_updated),
        ("CREATED_AT", "ASC", edge),
        ("NAME", "ASC", edge),
    ]
    for field, direction, cursor in mismatches:
        for listing in ("agents", "campaigns"):
            body = sane(
                await tenant.post(
                    f"query ($after: String) {{ {listing}(after: $after,"
                    f" orderBy: {{field: {field}, direction: {direction}}}) {{ edges {{ node {{ id }} }} }} }}",
                    {"after": cursor},
                )
            )
            assert error_codes(body) == ["BAD_USER_INPUT"], (field, direction, body)

    # A top-level list cursor is not an edge cursor for a nested connection either.
    for cursor in (by_name, by_created, by_updated):
        body = sane(
            await tenant.post(
                "query ($id: ID!, $after: String) { campaign(id: $id) {"
                " agents(after: $after) { edges { node { id } } } } }",
                {"id": campaign_id, "after": cursor},
            )
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], body

    # Used under their own ordering they are fine: the errors above are about the ordering.
    body = sane(
        await tenant.post(
            "query ($after: String) { agents(after: $after, orderBy: {field: NAME}) { edges { node { id } } } }",
            {"after": by_name},
        )
    )
    assert not body.get("errors"), body


FORGED_CURSORS = {
    "earliest-time": ("created_at:asc", "0001-01-01T00:00:00+14:00"),
    "latest-time": ("created_at:asc", "9999-12-31T23:59:59-14:00"),
    "updated-earliest-time": ("updated_at:desc", "0001-01-01T00:00:00+00:00"),
    "name-with-nul": ("name:asc", "a\x00b"),
    "name-very-long": ("name:asc", "z" * 900),
    "name-with-emoji": ("name:asc", "\U0001f600"),
}


@pytest.mark.parametrize("case", list(FORGED_CURSORS))
async def test_a_forged_cursor_of_the_right_shape_is_a_page_or_bad_user_input(
    tenant: TenantClient, case: str
) -> None:
    await seed(tenant)
    order, value = FORGED_CURSORS[case]
    column, _, direction = order.partition(":")
    cursor = b64(json.dumps([order, value, str(uuid.UUID(int=1))]))
    for listing in ("agents", "campaigns"):
        body = sane(
            await tenant.post(
                f"query ($after: String) {{ {listing}(after: $after, orderBy: "
                f"{{field: {column.upper()}, direction: {direction.upper()}}}) "
                "{ edges { node { id } } } }",
                {"after": cursor},
            )
        )
        assert set(error_codes(body)) <= {"BAD_USER_INPUT"}, (listing, body)


PAGE_SIZE_QUERIES = {
    "agents": "query ($first: Int) { agents(first: $first) { totalCount } }",
    "campaigns": "query ($first: Int) { campaigns(first: $first) { totalCount } }",
    "campaign-agents": (
        "query ($first: Int) { campaigns { edges { node { agents(first: $first) { totalCount } } } } }"
    ),
    "agent-campaigns": (
        "query ($first: Int) { agents { edges { node { campaigns(first: $first) { totalCount } } } } }"
    ),
}


@pytest.mark.parametrize("first", [101, 1000, -1, -100, 2**31 - 1, -(2**31)])
@pytest.mark.parametrize("query_case", list(PAGE_SIZE_QUERIES))
async def test_a_page_size_outside_0_to_100_is_bad_user_input(
    tenant: TenantClient, query_case: str, first: int
) -> None:
    await seed(tenant)
    body = sane(await tenant.post(PAGE_SIZE_QUERIES[query_case], {"first": first}))
    assert error_codes(body) == ["BAD_USER_INPUT"], body


@pytest.mark.parametrize("first", [0, 1, 100])
async def test_page_sizes_at_the_bounds_are_served(tenant: TenantClient, first: int) -> None:
    await seed(tenant)
    for query in PAGE_SIZE_QUERIES.values():
        body = sane(await tenant.post(query, {"first": first}))
        assert not body.get("errors"), body


SEARCHES = ["x" * 10_000, "\x00", "a\x00b", "a\x1bb", "%", "_", "\\", "' OR 1=1 --"]


@pytest.mark.parametrize("search", SEARCHES, ids=[repr(s[:12]) for s in SEARCHES])
async def test_an_odd_or_over_long_search_is_bad_user_input_or_finds_nothing(
    tenant: TenantClient, search: str
) -> None:
    await seed(tenant)
    body = sane(
        await tenant.post(
            "query ($s: String) { agents(filter: {search: $s}) { totalCount }"
            " campaigns(filter: {search: $s}) { totalCount } }",
            {"s": search},
        )
    )
    errors = error_codes(body)
    if errors:
        assert set(errors) == {"BAD_USER_INPUT"}, (search, body)
    else:
        assert body["data"] == {"agents": {"totalCount": 0}, "campaigns": {"totalCount": 0}}


# --- names, text, money, dates ---------------------------------------------------------------

BAD_NAMES = {
    "ten-thousand-chars": "x" * 10_000,
    "201-chars": "x" * 201,
    "empty": "",
    "spaces": "   ",
    "whitespace-mix": " \t\n\r\u00a0\u3000 ",
    "nul": "\x00",
    "nul-inside": "before\x00after",
    "bell": "a\x07b",
    "escape-sequence": "\x1b[2J\x1b[31mred",
    "newline-inside": "line one\nline two",
    "tab-inside": "a\tb",
    "delete": "a\x7fb",
    "c1-control": "a\x85b",
}


@pytest.mark.parametrize("case", list(BAD_NAMES))
async def test_a_bad_name_is_bad_user_input_and_writes_nothing(
    tenant: TenantClient, engine: AsyncEngine, case: str
) -> None:
    agent_id, campaign_id = await seed(tenant)
    name = BAD_NAMES[case]
    for query, variables in (
        (CREATE_AGENT, {"name": name}),
        (CREATE_CAMPAIGN, {"name": name}),
        (UPDATE_AGENT, {"id": agent_id, "name": name}),
        (UPDATE_CAMPAIGN, {"id": campaign_id, "name": name}),
    ):
        body = await expect_refused(tenant, engine, query, variables, {"BAD_USER_INPUT"})
        assert "name" in json.dumps(body["errors"][0]), body


async def test_names_at_the_length_limit_are_stored_stripped(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    name = "n" * 200
    data = await tenant.data(CREATE_AGENT, {"name": f"  {name}\t\n"})
    assert data["createAgent"]["agent"]["name"] == name
    data = await tenant.data(CREATE_CAMPAIGN, {"name": f"\u3000{name} "})
    assert data["createCampaign"]["campaign"]["name"] == name
    async with engine.connect() as conn:
        stored = (
            await conn.execute(select(agent.c.name).where(agent.c.tenant_id == tenant.id))
        ).scalar_one()
    assert stored == name


@pytest.mark.parametrize("text", ["x" * 4001, "x" * 100_000, "\x00", "a\x00b", "a\x1bb", "a\x7fb"])
async def test_a_bad_persona_or_goal_is_bad_user_input_and_writes_nothing(
    tenant: TenantClient, engine: AsyncEngine, text: str
) -> None:
    agent_id, campaign_id = await seed(tenant)
    for query, variables in (
        (CREATE_AGENT, {"name": "ok", "persona": text}),
        (CREATE_CAMPAIGN, {"name": "ok", "goal": text}),
        (UPDATE_AGENT, {"id": agent_id, "persona": text}),
        (UPDATE_CAMPAIGN, {"id": campaign_id, "goal": text}),
    ):
        await expect_refused(tenant, engine, query, variables, {"BAD_USER_INPUT"})


BAD_BUDGETS: list[Any] = [
    "-1",
    "-0.01",
    "1.234",
    "0.001",
    "NaN",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "abc",
    "",
    " ",
    "1,000",
    "1e400",
    "1e999999999",  # a valid Decimal whose abs() overflows the context
    "-1e999999999",
    "1000000000000",
    "0x10",
    # Python's Decimal reads these; a decimal numeral in ASCII digits does not.
    "1_000",
    " 12",
    "12 ",
    "٣",  # ARABIC-INDIC DIGIT THREE
    "\uff11\uff12",  # FULLWIDTH DIGITS ONE, TWO
    "1.5e",
    True,
    [],
    {"amount": 1},
]


@pytest.mark.parametrize("budget", BAD_BUDGETS, ids=[repr(b) for b in BAD_BUDGETS])
async def test_a_bad_budget_is_bad_user_input_and_writes_nothing(
    tenant: TenantClient, engine: AsyncEngine, budget: Any
) -> None:
    _, campaign_id = await seed(tenant)
    await expect_refused(
        tenant, engine, CREATE_CAMPAIGN, {"name": "money", "budget": budget}, {"BAD_USER_INPUT"}
    )
    await expect_refused(
        tenant, engine, UPDATE_CAMPAIGN, {"id": campaign_id, "budget": budget}, {"BAD_USER_INPUT"}
    )


async def test_a_budget_given_as_a_literal_in_the_document_is_checked_too(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    # 1.0000000000000001 is 1.0 as a float: read from its text, it has too many decimals.
    literals = ('"-5"', '"1.999"', '"NaN"', '"abc"', "-5", "1.999", "1.0000000000000001")
    for literal in (*literals, "1e999999999", "9" * 5000, "true", "[1]"):
        await expect_refused(
            tenant,
            engine,
            f'mutation {{ createCampaign(input: {{name: "m", budget: {literal}}}) {{ campaign {{ id }} }} }}',
            {},
            {"BAD_USER_INPUT"},
        )


BAD_DATES: dict[str, tuple[str | None, str | None]] = {
    "ends-before-starts": ("2030-06-01T00:00:00+00:00", "2030-05-01T00:00:00+00:00"),
    "ends-equal-starts": ("2030-06-01T00:00:00+00:00", "2030-06-01T00:00:00+00:00"),
    "ends-before-starts-across-zones": ("2030-06-01T12:00:00+00:00", "2030-06-01T13:00:00+02:00"),
    "naive-starts": ("2030-06-01T00:00:00", None),
    "naive-ends": (None, "2030-06-01T00:00:00"),
    "not-a-date": ("yesterday", None),
    "date-only-garbage": ("2030-13-45", None),
    "empty-string": ("", None),
    "before-year-one-in-utc": ("0001-01-01T00:00:00+14:00", None),
    "after-year-9999-in-utc": (None, "9999-12-31T23:59:59-14:00"),
}


@pytest.mark.parametrize("case", list(BAD_DATES))
async def test_bad_campaign_dates_are_bad_user_input_and_write_nothing(
    tenant: TenantClient, engine: AsyncEngine, case: str
) -> None:
    starts, ends = BAD_DATES[case]
    await expect_refused(
        tenant,
        engine,
        CREATE_CAMPAIGN,
        {"name": "dates", "startsAt": starts, "endsAt": ends},
        {"BAD_USER_INPUT"},
    )


@pytest.mark.parametrize(
    "ends",
    [
        "2029-12-31T23:59:59+00:00",
        "2030-01-01T00:00:00+00:00",
        "2030-01-01T00:59:59+01:00",
        "2030-06-01T00:00:00",
        "9999-12-31T23:59:59-14:00",
    ],
)
async def test_updating_ends_at_to_a_bad_value_is_bad_user_input_and_writes_nothing(
    tenant: TenantClient, engine: AsyncEngine, ends: str
) -> None:
    _, campaign_id = await seed(tenant)  # starts 2030-01-01T00:00:00Z
    await expect_refused(
        tenant, engine, UPDATE_CAMPAIGN, {"id": campaign_id, "endsAt": ends}, {"BAD_USER_INPUT"}
    )


# --- status transitions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], "COMPLETED"),
        ([], "PAUSED"),
        (["ACTIVE"], "DRAFT"),
        (["ACTIVE"], "ARCHIVED"),
        (["ACTIVE", "COMPLETED"], "ACTIVE"),
        (["ACTIVE", "COMPLETED"], "PAUSED"),
        (["ARCHIVED"], "ACTIVE"),
        (["ARCHIVED"], "DRAFT"),
    ],
)
async def test_an_invalid_status_transition_is_a_conflict_and_writes_nothing(
    tenant: TenantClient, engine: AsyncEngine, path: list[str], refused: str
) -> None:
    _, campaign_id = await seed(tenant)
    for status in path:
        await tenant.data(SET_STATUS, {"id": campaign_id, "status": status})
    body = await expect_refused(
        tenant, engine, SET_STATUS, {"id": campaign_id, "status": refused}, {"CONFLICT"}
    )
    assert error_codes(body) == ["CONFLICT"]


async def test_changing_an_archived_campaign_or_joining_a_completed_one_is_a_conflict(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    agent_id, campaign_id = await seed(tenant)
    other = (await tenant.data(CREATE_AGENT, {"name": "late"}))["createAgent"]["agent"]["id"]
    await tenant.data(SET_STATUS, {"id": campaign_id, "status": "ACTIVE"})
    await tenant.data(SET_STATUS, {"id": campaign_id, "status": "COMPLETED"})
    await expect_refused(
        tenant, engine, ASSIGN, {"campaignId": campaign_id, "agentIds": [other]}, {"CONFLICT"}
    )
    await tenant.data(SET_STATUS, {"id": campaign_id, "status": "ARCHIVED"})
    await expect_refused(
        tenant, engine, UPDATE_CAMPAIGN, {"id": campaign_id, "name": "revived"}, {"CONFLICT"}
    )
    assert agent_id != other


async def test_an_unknown_status_value_is_bad_user_input(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    _, campaign_id = await seed(tenant)
    for status in ("DELETED", "active", "", 3, None):
        await expect_refused(
            tenant, engine, SET_STATUS, {"id": campaign_id, "status": status}, {"BAD_USER_INPUT"}
        )


# --- null for an input that has a default ----------------------------------------------------

# A nullable variable may stand for a non-null input that has a default (left out, the
# default applies); sent as null it is refused when the field's arguments are coerced.
# (case: document, variables, the field, the argument and input field, the variable, its type)
NULL_FOR_A_DEFAULT: dict[str, tuple[str, dict[str, Any], str, str, str, str]] = {
    "createAgent-input-persona": (
        'mutation($g: String) { createAgent(input: {name: "x", persona: $g}) { agent { id } } }',
        {"g": None},
        "createAgent",
        "input' has invalid value at .persona",
        "g",
        "String",
    ),
    "createAgent-input-status": (
        'mutation($s: AgentStatus) { createAgent(input: {name: "x", status: $s}) { agent { id } } }',
        {"s": None},
        "createAgent",
        "input' has invalid value at .status",
        "s",
        "AgentStatus",
    ),
    "recordTransaction-input-description": (
        """mutation($c: ID!, $d: String) { recordTransaction(input: {campaignId: $c, kind: SPEND,
           amount: "5", idempotencyKey: "null-description", description: $d}) {
           transaction { id } } }""",
        {"d": None},
        "recordTransaction",
        "input' has invalid value at .description",
        "d",
        "String",
    ),
    "claimTasks-input-max": (
        "mutation($m: Int) { claimTasks(input: {max: $m}) { leases { leaseToken } } }",
        {"m": None},
        "claimTasks",
        "input' has invalid value at .max",
        "m",
        "Int",
    ),
    "agents-orderBy-direction": (
        "query($d: OrderDirection) { agents(orderBy: {direction: $d}) { totalCount } }",
        {"d": None},
        "agents",
        "orderBy' has invalid value at .direction",
        "d",
        "OrderDirection",
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stock_http(app: Starlette) -> AsyncIterator[AsyncClient]:
    """A client of the app's twin with planned execution off (graphql-core's executor)."""
    twin = stock_twin(app, app.state.settings)
    async with AsyncClient(transport=ASGITransport(app=twin), base_url="http://test") as client:
        yield client


@pytest.mark.parametrize("executor", ["planned", "stock"])
@pytest.mark.parametrize("case", list(NULL_FOR_A_DEFAULT))
async def test_null_for_a_non_null_input_with_a_default_is_a_bad_user_input_field_error(
    tenant: TenantClient,
    engine: AsyncEngine,
    stock_http: AsyncClient,
    caplog: pytest.LogCaptureFixture,
    executor: str,
    case: str,
) -> None:
    query, variables, field, where, variable, type_name = NULL_FOR_A_DEFAULT[case]
    _, campaign_id = await seed(tenant)
    client = tenant if executor == "planned" else replace(tenant, http=stock_http)
    caplog.set_level(logging.INFO, logger="chimera.errors")

    body = await expect_refused(
        client, engine, query, {**variables, "c": campaign_id}, {"BAD_USER_INPUT"}
    )

    (error,) = body["errors"]
    assert error["message"] == (
        f"Argument '{where}: Expected variable '${variable}' provided to non-null type "
        f"'{type_name}!' not to be None."
    ), body
    assert error["path"] == [field], body
    assert error["locations"], body
    # A root field of a non-null type (agents) takes the whole of data with it.
    assert body["data"] in ({field: None}, None), body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# --- properties ------------------------------------------------------------------------------

WHITESPACE = st.text(alphabet=" \t\n\r\u00a0\u2003\u3000", max_size=3)
NAMES = st.builds(
    lambda pre, core, post: pre + core + post,
    WHITESPACE,
    st.text(alphabet=st.characters(codec="utf-8"), max_size=260),
    WHITESPACE,
)


@PROPERTY
@given(name=NAMES)
async def test_any_text_as_a_name_is_stored_stripped_or_refused_as_bad_user_input(
    tenant: TenantClient, engine: AsyncEngine, name: str
) -> None:
    before = await counts(engine, tenant.id)
    body = sane(await tenant.post(CREATE_AGENT, {"name": name}))
    codes = error_codes(body)
    if codes:
        assert codes == ["BAD_USER_INPUT"], (name, body)
        assert body["data"] == {"createAgent": None}
        assert await counts(engine, tenant.id) == before
        return
    created = body["data"]["createAgent"]["agent"]
    assert created["name"] == name.strip()
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(agent.c.name).where(
                    agent.c.tenant_id == tenant.id, agent.c.id == pk_of(created["id"])
                )
            )
        ).scalar_one()
    assert stored == name.strip()


def _json_b64(value: Any) -> str:
    return b64(json.dumps(value))


ARBITRARY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
IDS = st.one_of(
    ARBITRARY_TEXT,
    st.binary(max_size=120).map(b64),
    st.builds(lambda t, pk: b64(f"{t}:{pk}"), ARBITRARY_TEXT, ARBITRARY_TEXT),
    st.builds(
        lambda t, pk: b64(f"{t}:{pk}"),
        st.sampled_from(["Agent", "Campaign", "Tenant", "agent", "Node", ""]),
        ARBITRARY_TEXT,
    ),
)

ID_PROBE = """
query ($id: ID!) { node(id: $id) { id } agent(id: $id) { id } campaign(id: $id) { id } }
"""


@PROPERTY
@given(global_id=IDS)
async def test_any_text_as_an_id_is_bad_user_input_or_null(
    tenant: TenantClient, engine: AsyncEngine, global_id: str
) -> None:
    body = sane(await tenant.post(ID_PROBE, {"id": global_id}))
    assert set(error_codes(body)) <= {"BAD_USER_INPUT"}, (global_id, body)
    data = body.get("data")
    assert data is None or all(v is None for v in data.values()), body

    before = await counts(engine, tenant.id)
    body = sane(await tenant.post(UNASSIGN, {"campaignId": global_id, "agentId": global_id}))
    assert set(error_codes(body)) <= {"BAD_USER_INPUT", "NOT_FOUND"}, (global_id, body)
    assert error_codes(body), body
    assert await counts(engine, tenant.id) == before


ORDERS = [
    f"{c}:{d}" for c in ("created_at", "updated_at", "name", "assigned_at") for d in ("asc", "desc")
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ARBITRARY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ARBITRARY_TEXT, children),
    max_leaves=8,
)
CURSORS = st.one_of(
    ARBITRARY_TEXT,
    st.binary(max_size=200).map(b64),
    JSON_VALUES.map(_json_b64),
    st.lists(ARBITRARY_TEXT, min_size=0, max_size=4).map(_json_b64),
    st.tuples(st.sampled_from(ORDERS), ARBITRARY_TEXT, ARBITRARY_TEXT).map(
        lambda t: _json_b64(list(t))
    ),
)

CURSOR_PROBES = [
    "query ($after: String) { agents(after: $after) { edges { node { id } } } }",
    "query ($after: String) { campaigns(after: $after) { edges { node { id } } } }",
]


@PROPERTY
@given(cursor=CURSORS)
async def test_any_text_as_a_cursor_is_bad_user_input(tenant: TenantClient, cursor: str) -> None:
    for probe in CURSOR_PROBES:
        body = sane(await tenant.post(probe, {"after": cursor}))
        assert error_codes(body) == ["BAD_USER_INPUT"], (cursor, body)


WELL_FORMED_CURSORS = st.tuples(
    st.sampled_from(["created_at", "updated_at", "name"]),
    st.sampled_from(["asc", "desc"]),
    st.one_of(
        ARBITRARY_TEXT,
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    ),
    st.uuids(),
)


@PROPERTY
@given(parts=WELL_FORMED_CURSORS)
async def test_a_forged_but_well_formed_cursor_is_a_page_or_bad_user_input(
    tenant: TenantClient, parts: tuple[str, str, str, uuid.UUID]
) -> None:
    column, direction, value, pk = parts
    cursor = _json_b64([f"{column}:{direction}", value, str(pk)])
    body = sane(
        await tenant.post(
            "query ($after: String) { agents(after: $after, orderBy: "
            f"{{field: {column.upper()}, direction: {direction.upper()}}}) "
            "{ edges { node { id } } } }",
            {"after": cursor},
        )
    )
    assert set(error_codes(body)) <= {"BAD_USER_INPUT"}, (parts, body)
