"""A client's mistake is one INFO line with its code; a server fault keeps its traceback."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette

from app.errors import StoreUnavailable
from tests.support import TenantClient, error_codes


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name in {"chimera.errors", "strawberry.execution"}]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ('{ campaign(id: "nope") { id } }', "BAD_USER_INPUT"),
        ("{ campaigns(first: 1000) { totalCount } }", "BAD_USER_INPUT"),
        ("{ campaigns { nope } }", "BAD_USER_INPUT"),
        (
            'mutation { setCampaignStatus(input: {id: "Q2FtcGFpZ246MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw", status: ACTIVE}) { campaign { id } } }',
            "NOT_FOUND",
        ),
    ],
)
async def test_client_errors_are_logged_at_info_without_a_traceback(
    tenant: TenantClient, caplog: pytest.LogCaptureFixture, query: str, code: str
) -> None:
    caplog.set_level(logging.INFO)
    body = await tenant.gql(query)
    assert error_codes(body) == [code], body
    records = _records(caplog)
    assert records, "the error was not logged"
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in records), records
    assert all(code in r.getMessage() for r in records)


async def test_a_fault_is_logged_at_error_with_its_traceback(
    tenant: TenantClient,
    app: Starlette,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resolvers.tenants.types import Tenant

    def broken(*_args: object, **_kwargs: object) -> object:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Tenant, "from_row", broken)
    caplog.set_level(logging.INFO)
    body = await tenant.gql("{ viewer { tenant { slug } } }")
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"], body
    assert "a bug" not in str(body)  # masked for the client
    (record,) = _records(caplog)
    assert record.levelno == logging.ERROR and record.exc_info is not None


async def test_a_store_outage_is_one_warning_line(
    tenant: TenantClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.redis import counters

    async def down(*_args: object, **_kwargs: object) -> object:
        raise StoreUnavailable("Redis", "refused")

    monkeypatch.setattr(counters, "hmget_many", down)
    caplog.set_level(logging.INFO)
    body = await tenant.gql("{ campaigns { edges { node { engagement { likes } } } } }")
    assert not body.get("errors") or error_codes(body) == ["STORE_UNAVAILABLE"] * len(
        body["errors"]
    )
    await tenant.data('mutation { createCampaign(input: {name: "c"}) { campaign { id } } }')
    caplog.clear()
    body = await tenant.gql("{ campaigns { edges { node { engagement { likes } } } } }")
    assert set(error_codes(body)) == {"STORE_UNAVAILABLE"}, body
    records = _records(caplog)
    assert records and all(r.levelno == logging.WARNING and r.exc_info is None for r in records), (
        records
    )


async def test_an_operation_name_that_names_nothing_is_a_client_error_on_a_stream_too(
    tenant: TenantClient, live_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {tenant.token()}"}
    body = {"query": "query A { __typename }", "operationName": "Z"}
    async with httpx.AsyncClient(base_url=f"http://{live_url}", timeout=20) as client:
        response = await client.post("/graphql", json=body, headers=headers)
    assert 'Unknown operation named \\"Z\\"' in response.text, response.text
    records = [r for r in _records(caplog) if "Unknown operation" in r.getMessage()]
    assert records, "the error was not logged"
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in records), records
