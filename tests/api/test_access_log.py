"""One access line per request: status, duration, cost, tenant and operation, and no line
for probes and scrapes."""

from __future__ import annotations

import logging

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import new_tenant


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "chimera.access"]


async def test_a_graphql_request_is_one_line_with_its_status_duration_cost_tenant_and_operation(
    http: AsyncClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await new_tenant(engine, http)
    caplog.set_level(logging.INFO, logger="chimera.access")
    caplog.clear()
    body = await tenant.gql("query Names { campaigns(first: 2) { edges { node { name } } } }")
    [line] = access_lines(caplog)
    fields = line.__dict__
    assert (fields["method"], fields["path"], fields["status"]) == ("POST", "/graphql", 200)
    assert fields["duration_ms"] > 0
    assert fields["cost"] == body["extensions"]["cost"]["actual"]
    assert (fields["tenant"], fields["operation"]) == (tenant.slug, "Names")
    assert line.getMessage().startswith("POST /graphql 200 ")


async def test_probes_and_scrapes_write_no_line_but_refusals_do(
    http: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chimera.access")
    caplog.clear()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await http.get(path)).status_code == 200
    assert access_lines(caplog) == []
    refused = await http.post(
        "/graphql?debug=secret", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert refused.status_code == 400
    [line] = access_lines(caplog)
    assert line.__dict__["status"] == 400
    assert "debug" not in line.getMessage()  # the path, never its query string
