"""GraphQL over HTTP as its specification says: the reference audit, media types, status
codes, GET and its CSRF protection.

With ``application/graphql-response+json`` a request error is a 4xx without ``data``; with
``application/json`` (and no Accept) legacy clients keep a 200 whose body says what failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role
from app.stores.postgres.tables import agent
from tests.http_spec.tools import install_tools, run_audit
from tests.node_packages import node_missing
from tests.support import TenantClient, error_codes

RESPONSE_JSON = "application/graphql-response+json"
BOTH = f"{RESPONSE_JSON}, application/json;q=0.9"  # what the specification tells clients to send


def auth(tenant: TenantClient, role: Role = Role.EDITOR) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.token(role)}"}


async def post(
    http: AsyncClient, body: dict[str, Any], accept: str | None, headers: dict[str, str]
) -> Response:
    sent = dict(headers)
    if accept is not None:
        sent["Accept"] = accept
    return await http.post("/graphql", json=body, headers=sent)


async def agents_count(engine: AsyncEngine, tenant: TenantClient) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).select_from(agent).where(agent.c.tenant_id == tenant.id)
            )
            or 0
        )


@pytest.mark.skipif(
    node_missing() is not None, reason=f"the audit runs on Node.js: {node_missing()}"
)
async def test_the_specifications_audit_passes_without_a_warning_or_a_notice(
    live_url: str, tenant: TenantClient, tmp_path: Path
) -> None:
    tools = install_tools()
    results = await run_audit(tools, f"http://{live_url}/graphql", tenant.token())
    assert len(results) >= 50, results  # the whole suite ran
    not_ok = [r for r in results if r["status"] != "ok"]
    assert not_ok == [], not_ok


REQUEST_ERRORS: dict[str, tuple[dict[str, Any], str]] = {
    "parse": ({"query": "{ campaigns {"}, "BAD_USER_INPUT"),
    "validation": ({"query": "{ campaigns { nope } }"}, "BAD_USER_INPUT"),
    "variable coercion": (
        {"query": "query ($n: Int!) { campaigns(first: $n) { totalCount } }", "variables": {}},
        "BAD_USER_INPUT",
    ),
    "operation limit": (
        {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(2000)) + " }"},
        "OPERATION_LIMIT",
    ),
}


@pytest.mark.parametrize("kind", list(REQUEST_ERRORS))
async def test_a_request_error_is_a_400_without_data_under_graphql_response_json(
    http: AsyncClient, tenant: TenantClient, kind: str
) -> None:
    body, code = REQUEST_ERRORS[kind]
    response = await post(http, body, BOTH, auth(tenant))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(RESPONSE_JSON)
    answer = response.json()
    assert "data" not in answer
    assert error_codes(answer) == [code] * len(answer["errors"])


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/plain, */*"])
@pytest.mark.parametrize("kind", list(REQUEST_ERRORS))
async def test_legacy_clients_keep_a_200_with_null_data_for_the_same_errors(
    http: AsyncClient, tenant: TenantClient, kind: str, accept: str | None
) -> None:
    body, code = REQUEST_ERRORS[kind]
    response = await post(http, body, accept, auth(tenant))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["data"] is None
    assert error_codes(answer)[0] == code


async def test_a_missing_credential_is_a_401_with_a_bearer_challenge(http: AsyncClient) -> None:
    response = await post(http, {"query": "{ __typename }"}, RESPONSE_JSON, {})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "errors": [
            {"message": "Authentication required", "extensions": {"code": "UNAUTHENTICATED"}}
        ]
    }
    legacy = await post(http, {"query": "{ __typename }"}, "application/json", {})
    assert legacy.status_code == 200
    assert error_codes(legacy.json()) == ["UNAUTHENTICATED"]


async def test_an_execution_error_is_a_200_with_data_on_every_media_type(
    http: AsyncClient, tenant: TenantClient
) -> None:
    # A well-formed id of nothing: execution ran, and says so at the field's path.
    query = (
        '{ campaign(id: "Q2FtcGFpZ246MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw") { id } }'
    )
    for accept in (BOTH, "application/json"):
        response = await post(http, {"query": query}, accept, auth(tenant))
        assert response.status_code == 200, response.text
        assert "data" in response.json()


async def test_graphql_response_json_is_chosen_by_quality_and_named_in_the_content_type(
    http: AsyncClient, tenant: TenantClient
) -> None:
    cases = {
        RESPONSE_JSON: RESPONSE_JSON,
        BOTH: RESPONSE_JSON,
        f"application/json, {RESPONSE_JSON};q=0.5": "application/json",
        f"{RESPONSE_JSON};q=0, application/json": "application/json",
        f"{RESPONSE_JSON}; charset=utf-8": RESPONSE_JSON,
    }
    for accept, media in cases.items():
        response = await post(http, {"query": "{ __typename }"}, accept, auth(tenant))
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"].split(";")[0] == media, accept
        assert response.json()["data"] == {"__typename": "Query"}


async def test_a_malformed_body_is_a_400_in_the_media_type_the_client_accepts(
    http: AsyncClient, tenant: TenantClient
) -> None:
    for accept, has_data in ((RESPONSE_JSON, False), ("application/json", True)):
        response = await http.post(
            "/graphql",
            content=b'{"query": ',
            headers={**auth(tenant), "Accept": accept, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith(accept)
        assert ("data" in response.json()) is has_data
        assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_queries_come_by_get_with_url_encoded_variables(
    http: AsyncClient, tenant: TenantClient
) -> None:
    await tenant.data('mutation { createAgent(input: {name: "by get"}) { agent { id } } }')
    response = await http.get(
        "/graphql",
        params={
            "query": "query Agents($n: Int) { agents(first: $n) { totalCount } }",
            "variables": '{"n": 1}',
            "operationName": "Agents",
        },
        headers={**auth(tenant), "Accept": BOTH},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"agents": {"totalCount": 1}}


async def test_a_get_without_a_header_a_forged_request_cannot_carry_is_refused_before_auth(
    http: AsyncClient,
) -> None:
    """A cross-site link or form can send a GET, but neither Authorization nor
    GraphQL-Require-Preflight (they need a CORS preflight this API never grants)."""
    forged = await http.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"Accept": BOTH}
    )
    assert forged.status_code == 400, forged.text
    assert "CSRF" in forged.json()["errors"][0]["message"]
    assert "data" not in forged.json()
    preflighted = await http.get(
        "/graphql",
        params={"query": "{ __typename }"},
        headers={"Accept": BOTH, "GraphQL-Require-Preflight": "1"},
    )
    assert preflighted.status_code == 401  # through to authentication


async def test_a_mutation_by_get_is_a_405_allowing_post_and_writes_nothing(
    http: AsyncClient, tenant: TenantClient, engine: AsyncEngine
) -> None:
    before = await agents_count(engine, tenant)
    for accept in (BOTH, "application/json"):
        response = await http.get(
            "/graphql",
            params={"query": 'mutation { createAgent(input: {name: "x"}) { agent { id } } }'},
            headers={**auth(tenant), "Accept": accept},
        )
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "POST"
        assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert await agents_count(engine, tenant) == before


async def test_an_operation_priced_over_the_maximum_is_a_400_without_data(
    http: AsyncClient, tenant: TenantClient
) -> None:
    query = """{ campaigns(first: 100) { edges { node { id
      agents(first: 100) { edges { node { id activeTasks } } }
      media(first: 100) { edges { node { url } } } } } } }"""
    response = await post(http, {"query": query}, BOTH, auth(tenant))
    assert response.status_code == 400, response.text
    answer = response.json()
    assert "data" not in answer
    assert error_codes(answer) == ["COST_LIMIT"]
    assert answer["extensions"]["cost"]["actual"] is None  # the price still says why
