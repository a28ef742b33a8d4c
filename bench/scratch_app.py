"""The app in this process on scratch databases, for benches that drive it over ASGI: a
migrated database of the server at ``database_url``, a vector database (an embedded server
if that one has no pgvector), a tenant, and tokens for it. Everything is dropped after."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from starlette.applications import Starlette

from app import migrations
from app.auth import Role, mint_token
from app.main import create_app
from app.settings import Settings
from app.stores.postgres.engine import create_engine
from app.stores.postgres.tables import tenant
from bench.unthrottled import UNLIMITED
from tests.engines import create_database, drop_database, embedded_postgres_server, has_extension

SECRET = "bench-secret-that-is-long-enough-for-hs256"


@dataclass
class ScratchApp:
    app: Starlette
    http: AsyncClient
    settings: Settings
    tenant_id: uuid.UUID
    slug: str

    def token(self, role: Role = Role.EDITOR, agent_id: uuid.UUID | None = None) -> str:
        return mint_token(
            SECRET,
            tenant_id=self.tenant_id,
            tenant_slug=self.slug,
            role=role,
            subject="bench",
            ttl_seconds=3600,
            agent_id=agent_id,
        )

    async def call(self, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]


@asynccontextmanager
async def scratch_app(
    database_url: str, redis_url: str, **settings: Any
) -> AsyncIterator[ScratchApp]:
    server = database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = await create_database(server, prefix="chimera_bench")
        vector_server = server
        if not await has_extension(server, "vector"):
            vector_server = stack.enter_context(embedded_postgres_server(scratch / "pgvector"))
        vector_url = await create_database(vector_server, prefix="chimera_bench_vec")
        try:
            engine = create_engine(url, timeout=10)
            await migrations.upgrade(engine)
            tenant_id = uuid.uuid4()
            slug = f"bench-{tenant_id.hex[:8]}"
            async with engine.begin() as conn:
                await conn.execute(
                    tenant.insert().values(id=tenant_id, slug=slug, name=slug, **UNLIMITED)
                )
            await engine.dispose()
            config = Settings(
                database_url=url,
                redis_url=redis_url,
                pgvector_url=vector_url,
                auth_secret=SECRET,
                env="production",
                media_sweep_seconds=0,
                data_dir=scratch / "data",
                **settings,
            )
            app = create_app(config)
            async with (
                LifespanManager(app),
                AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as http,
            ):
                yield ScratchApp(app, http, config, tenant_id, slug)
        finally:
            await drop_database(url)
            await drop_database(vector_url)
