"""Helpers tests share: a per-tenant GraphQL client and SQL statement counting."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from httpx import AsyncClient, Response
from redis.asyncio import Redis
from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role, mint_token
from app.metrics.consumer import apply_once
from app.seed import seed_running_tasks
from app.settings import Settings
from app.stores.postgres import reads
from app.stores.postgres.tables import outbox, tenant
from app.telemetry import Telemetry

SECRET = "test-secret-that-is-long-enough-for-hs256"
HEALTH_TOKEN = "test-health-token"


@dataclass
class TenantClient:
    """Speaks GraphQL over HTTP as one tenant, with a token of the role asked for."""

    http: AsyncClient
    id: uuid.UUID
    slug: str
    _tokens: dict[Role, str] = field(default_factory=dict, repr=False)

    def token(self, role: Role = Role.EDITOR) -> str:
        """The client's token for a role: one per role, reused as a real client reuses its
        token (each token is a client of its own, with its own rate-limit bucket)."""
        if role not in self._tokens:
            self._tokens[role] = mint_token(
                SECRET,
                tenant_id=self.id,
                tenant_slug=self.slug,
                role=role,
                subject=f"test-{role.value}",
                ttl_seconds=600,
            )
        return self._tokens[role]

    def token_as(self, subject: str, role: Role = Role.EDITOR) -> str:
        """A token for ``subject``: a client of its own (its own rate-limit bucket), or a
        subject a test means to refuse."""
        return mint_token(
            SECRET,
            tenant_id=self.id,
            tenant_slug=self.slug,
            role=role,
            subject=subject,
            ttl_seconds=600,
        )

    def agent_token(self, agent_id: uuid.UUID) -> str:
        """A runtime's token, bound to one agent."""
        return mint_token(
            SECRET,
            tenant_id=self.id,
            tenant_slug=self.slug,
            role=Role.AGENT,
            subject=f"agent:{agent_id}",
            ttl_seconds=600,
            agent_id=agent_id,
        )

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: Role = Role.EDITOR,
        token: str | None = None,
    ) -> Response:
        return await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token or self.token(role)}"},
        )

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: Role = Role.EDITOR,
        token: str | None = None,
    ) -> dict[str, Any]:
        response = await self.post(query, variables, role=role, token=token)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: Role = Role.EDITOR,
        token: str | None = None,
    ) -> dict[str, Any]:
        body = await self.gql(query, variables, role=role, token=token)
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data


async def new_tenant(engine: AsyncEngine, http: AsyncClient) -> TenantClient:
    pk = uuid.uuid4()
    slug = f"t-{pk.hex[:12]}"
    async with engine.begin() as conn:
        await conn.execute(insert(tenant).values(id=pk, slug=slug, name=slug))
    client = TenantClient(http=http, id=pk, slug=slug)
    # The app checks once a minute that a token's tenant exists (app/known_tenants.py);
    # one request now, so that tests counting a request's statements count only its own.
    await client.data("{ viewer { role } }")
    return client


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


@dataclass
class StatementLog:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)


# Only work done on behalf of the code under the ``with`` block counts: background tasks of
# the app (relay, indexer, sweeper) started earlier in another context and are not counted.
_counting: ContextVar[tuple[StatementLog, ...]] = ContextVar("counting", default=())


@contextmanager
def _counted(log: StatementLog) -> Iterator[None]:
    token = _counting.set((*_counting.get(), log))
    try:
        yield
    finally:
        _counting.reset(token)


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[StatementLog]:
    """Statements sent to PostgreSQL: through SQLAlchemy (commands) and through the loaders'
    direct reads (app/stores/postgres/reads.py)."""
    log = StatementLog()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if log in _counting.get():
            log.statements.append(statement)

    def record_read(on: AsyncEngine, statement: str, args: Any) -> None:
        if on is engine and log in _counting.get():
            log.statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        with _counted(log), reads.watch(record_read):
            yield log
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


# Every metered request makes one Redis call of its own before it runs: the rate-limit
# charge (app/ratelimit/buckets.py). Counts of a request's round trips include it.
CHARGE = 1

HANDSHAKE = re.compile(r"^\[?b'\*\d+\\r\\n\$\d+\\r\\n(HELLO|PING|CLIENT|AUTH|SELECT)\\r")


@contextmanager
def count_redis_round_trips() -> Iterator[StatementLog]:
    """Count packets of commands sent to any Redis server: one per command or pipeline. A new
    pooled connection's handshake (HELLO, PING, CLIENT SETINFO...) is not the request's work
    and is not counted: whether the pool had a connection free is the pool's business."""
    from redis.asyncio.connection import AbstractConnection

    log = StatementLog()
    original = AbstractConnection.send_packed_command

    async def spy(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        text = repr(command)
        if log in _counting.get() and not HANDSHAKE.search(text):
            log.statements.append(text[:200])
        await original(self, command, check_health)

    AbstractConnection.send_packed_command = spy  # type: ignore[method-assign]
    try:
        with _counted(log):
            yield log
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


async def settle_metrics(engine: AsyncEngine) -> None:
    """Wait until every committed ENGAGEMENT and SPEND event is in the time series.

    Applying passes here is not enough: the app's own consumer may hold a batch (its rows
    are skipped, locked) and commit it a moment later, so this waits until none is pending.
    """
    async with asyncio.timeout(30):
        while True:
            while await apply_once(engine):
                pass
            async with engine.connect() as conn:
                pending = await conn.scalar(
                    select(func.count())
                    .select_from(outbox)
                    .where(
                        outbox.c.metrics_applied_at.is_(None),
                        outbox.c.event_type.in_(("ENGAGEMENT", "SPEND")),
                    )
                )
            if not pending:
                return
            await asyncio.sleep(0.02)


async def start_tasks(redis: Redis, tenant_id: uuid.UUID, agent_id: uuid.UUID, count: int) -> None:
    """Give an agent ``count`` RUNNING tasks, through the queue as a runtime would."""
    await seed_running_tasks(redis, tenant_id, {agent_id: count})


@asynccontextmanager
async def another_app(
    settings: Settings, data_dir: Path, *, telemetry: Telemetry | None = None, **changes: Any
) -> AsyncIterator[Starlette]:
    """An app of its own beside the session's, on the same stores, with ``changes`` to its
    settings (and tracing into ``telemetry``), running for the block. Its background work is off (the session app's relay and
    sweepers serve these stores already), and it is given time to start and stop on a busy
    machine: asgi-lifespan's 5 s default failed a shutdown under CI's load."""
    from asgi_lifespan import LifespanManager

    from app.main import create_app

    configured = settings.model_copy(
        update={
            "data_dir": data_dir,
            "relay_enabled": False,
            "indexer_enabled": False,
            "media_sweep_seconds": 0,
            **changes,
        }
    )
    application = create_app(configured, telemetry)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        yield application
