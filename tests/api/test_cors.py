"""A page on another origin may call the API only when its origin is configured
(CHIMERA_CORS_ORIGINS): its preflight is granted for the headers the API reads, its answers
carry the origin and the headers a client needs to read; any other origin gets neither."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from pydantic import ValidationError
from starlette.applications import Starlette

from app.cli import describe
from app.settings import Settings
from tests.support import TenantClient, another_app

DASHBOARD = "https://dash.example.com"
QUERY = {"query": "{ agents(first: 1) { totalCount } }"}


def preflight(origin: str, headers: str = "authorization, content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


@pytest_asyncio.fixture
async def cross_origin(settings: Settings, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with (
        another_app(settings, tmp_path, cors_origins=f"{DASHBOARD},http://localhost:5173") as app,
        AsyncClient(transport=ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http


async def test_a_listed_origins_preflight_is_granted_for_the_headers_the_api_reads(
    cross_origin: AsyncClient,
) -> None:
    response = await cross_origin.options(
        "/graphql", headers=preflight(DASHBOARD, "authorization, content-type, x-chimera-plan")
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == DASHBOARD
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-chimera-plan", "last-event-id"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert "access-control-allow-credentials" not in response.headers
    assert int(response.headers["access-control-max-age"]) > 0


async def test_a_listed_origin_reads_its_answer_and_the_headers_a_client_needs(
    cross_origin: AsyncClient, tenant: TenantClient
) -> None:
    response = await cross_origin.post(
        "/graphql",
        json=QUERY,
        headers={"Origin": DASHBOARD, "Authorization": f"Bearer {tenant.token()}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["agents"]["totalCount"] == 0
    assert response.headers["access-control-allow-origin"] == DASHBOARD
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "retry-after" in exposed


async def test_an_unlisted_origin_gets_no_grant_to_ask_or_to_read(
    cross_origin: AsyncClient, tenant: TenantClient
) -> None:
    for origin in ("https://evil.example.com", "https://dash.example.com.evil.example", "null"):
        asked = await cross_origin.options("/graphql", headers=preflight(origin))
        assert asked.status_code == 400, (origin, asked.text)
        assert "access-control-allow-origin" not in asked.headers
        # A simple request still reaches the API (CORS is the browser's guard, not the
        # server's), but the browser is given no grant to show the page its answer.
        sent = await cross_origin.post(
            "/graphql",
            json=QUERY,
            headers={"Origin": origin, "Authorization": f"Bearer {tenant.token()}"},
        )
        assert "access-control-allow-origin" not in sent.headers


async def test_a_header_the_api_does_not_read_is_not_granted(cross_origin: AsyncClient) -> None:
    response = await cross_origin.options(
        "/graphql", headers=preflight(DASHBOARD, "x-forwarded-host")
    )
    assert response.status_code == 400


async def test_without_origins_configured_nothing_cross_origin_is_granted(
    app: Starlette, http: AsyncClient, tenant: TenantClient
) -> None:
    asked = await http.options("/graphql", headers=preflight(DASHBOARD))
    assert asked.status_code == 405
    sent = await http.post(
        "/graphql",
        json=QUERY,
        headers={"Origin": DASHBOARD, "Authorization": f"Bearer {tenant.token()}"},
    )
    assert sent.status_code == 200
    assert "access-control-allow-origin" not in sent.headers


async def test_any_origin_with_a_star(
    settings: Settings, tmp_path: Path, tenant: TenantClient
) -> None:
    async with (
        another_app(settings, tmp_path, cors_origins="*") as app,
        AsyncClient(transport=ASGITransport(app=app), base_url="http://api") as http,
    ):
        asked = await http.options("/graphql", headers=preflight("https://anyone.example"))
        assert asked.status_code == 200
        assert asked.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "value",
    [
        "dash.example.com",  # no scheme
        "ftp://dash.example.com",
        "https://dash.example.com/app",  # a path: not an origin
        "https://user:secret@dash.example.com",
        "https://dash.example.com:99999",
        "*,https://dash.example.com",
    ],
)
def test_a_value_that_is_not_a_list_of_origins_stops_start_up(value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(CHIMERA_CORS_ORIGINS=value)
    said = describe(raised.value)  # the line `chimera serve` prints before it exits
    assert said.startswith("CHIMERA_CORS_ORIGINS: "), said
    assert "secret" not in said


def test_origins_are_read_from_a_comma_separated_list() -> None:
    settings = Settings(cors_origins=" https://a.example , http://localhost:5173 ,")
    assert settings.allowed_origins == ["https://a.example", "http://localhost:5173"]
    assert Settings().allowed_origins == []


async def test_a_listed_origin_may_upload_to_the_local_stores_signed_urls(
    cross_origin: AsyncClient,
) -> None:
    asked = await cross_origin.options(
        "/media/any/key",
        headers={
            "Origin": DASHBOARD,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert asked.status_code == 200, asked.text
    assert asked.headers["access-control-allow-origin"] == DASHBOARD
    assert "PUT" in asked.headers["access-control-allow-methods"]
