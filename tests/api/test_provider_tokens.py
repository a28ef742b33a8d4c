"""Tokens signed by an identity provider (RS256, ES256), verified against its JWKS, served
here by a real HTTP server on loopback: accepted, refused, and picked up after a rotation."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from httpx import ASGITransport, AsyncClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from app.stores.postgres.tables import tenant as tenant_table
from tests.support import TenantClient, another_app, error_codes

ISSUER = "https://idp.example.test/"


@dataclass
class Provider:
    """An identity provider's key set, served at ``url``; keys may be added (rotation)."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    private: dict[str, Any] = field(default_factory=dict)

    def add_rsa(self, kid: str) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        self.keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        self.private[kid] = (key, "RS256")

    def add_ec(self, kid: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        self.keys.append({**jwk, "kid": kid, "alg": "ES256", "use": "sig"})
        self.private[kid] = (key, "ES256")

    def token(self, kid: str, tenant_id: uuid.UUID, slug: str, **overrides: Any) -> str:
        key, algorithm = self.private[kid]
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "user@example.test",
            "tid": str(tenant_id),
            "tenant": slug,
            "role": "editor",
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            **overrides,
        }
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
def provider() -> Iterator[Provider]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest_asyncio.fixture
async def client(
    settings: Settings, engine: AsyncEngine, provider: Provider, tmp_path: Path
) -> AsyncIterator[tuple[AsyncClient, TenantClient]]:
    provider.add_rsa("rsa-1")
    provider.add_ec("ec-1")
    async with another_app(
        settings, tmp_path, jwks_url=provider.url, jwt_issuer=ISSUER
    ) as application:
        # An unknown key id makes PyJWKClient fetch the set again at most once per 30 s after
        # its last fetch (a flood of forged key ids cannot make it hammer the provider). Here
        # a rotation follows the first fetch at once; in life that cooldown is long past.
        application.state.provider_tokens.client.cooldown_duration = 0
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            pk = uuid.uuid4()
            slug = f"t-{pk.hex[:12]}"
            async with engine.begin() as conn:
                await conn.execute(insert(tenant_table).values(id=pk, slug=slug, name=slug))
            yield http, TenantClient(http=http, id=pk, slug=slug)


VIEWER = "{ viewer { role subject tenant { slug } } }"


async def test_rs256_and_es256_tokens_of_the_provider_are_accepted(
    client: tuple[AsyncClient, TenantClient], provider: Provider
) -> None:
    _, tenant = client
    for kid in ("rsa-1", "ec-1"):
        token = provider.token(kid, tenant.id, tenant.slug)
        viewer = (await tenant.data(VIEWER, token=token))["viewer"]
        assert viewer == {
            "role": "EDITOR",
            "subject": "user@example.test",
            "tenant": {"slug": tenant.slug},
        }
    # Our own HS256 tokens still work beside them.
    assert "errors" not in await tenant.gql(VIEWER)


async def test_a_token_the_provider_did_not_sign_or_for_another_issuer_is_refused(
    client: tuple[AsyncClient, TenantClient], provider: Provider
) -> None:
    _, tenant = client
    stranger = Provider()
    stranger.add_rsa("rsa-1")  # the same key id, another key
    forged = stranger.token("rsa-1", tenant.id, tenant.slug)
    assert error_codes(await tenant.gql(VIEWER, token=forged)) == ["UNAUTHENTICATED"]
    elsewhere = provider.token("rsa-1", tenant.id, tenant.slug, iss="https://other.test/")
    assert error_codes(await tenant.gql(VIEWER, token=elsewhere)) == ["UNAUTHENTICATED"]
    expired = provider.token("ec-1", tenant.id, tenant.slug, exp=int(time.time()) - 10)
    body = await tenant.gql(VIEWER, token=expired)
    assert error_codes(body) == ["UNAUTHENTICATED"] and "expired" in body["errors"][0]["message"]
    runtime = provider.token("ec-1", tenant.id, tenant.slug, role="agent")
    assert error_codes(await tenant.gql(VIEWER, token=runtime)) == ["UNAUTHENTICATED"]


async def test_a_rotated_key_is_fetched_when_a_token_first_names_it(
    client: tuple[AsyncClient, TenantClient], provider: Provider
) -> None:
    _, tenant = client
    assert "errors" not in await tenant.gql(
        VIEWER, token=provider.token("rsa-1", tenant.id, tenant.slug)
    )
    fetched = provider.fetches
    provider.add_rsa("rsa-2")  # the provider rotates: a new key, in the set from now on
    rotated = provider.token("rsa-2", tenant.id, tenant.slug)
    assert "errors" not in await tenant.gql(VIEWER, token=rotated)
    assert provider.fetches == fetched + 1
    # A known key costs no fetch.
    assert "errors" not in await tenant.gql(
        VIEWER, token=provider.token("rsa-2", tenant.id, tenant.slug)
    )
    assert provider.fetches == fetched + 1
