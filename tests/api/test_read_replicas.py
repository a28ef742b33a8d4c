"""Read replicas (`DATABASE_READ_URLS`) against a real streaming replica made with
pg_basebackup: queries read from it, a client always reads its own writes, a replica that
lags past the bound or is down gets no reads (they go to the primary, counted, without an
error), and writes never go to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app import migrations
from app.auth import Role
from app.settings import Settings
from app.stores.postgres import reads
from app.stores.postgres.engine import create_engine
from app.stores.postgres.replicas import ReadReplicas, parse_lsn
from tests.api.test_metrics_endpoint import scrape, total
from tests.replication import Replicated, primary_and_replica
from tests.support import TenantClient, another_app, new_tenant

MAX_LAG = 6.0  # generous: a busy machine must not turn a fresh replica into a stale one
FALLBACKS = "chimera_db_replica_fallbacks_total"


@dataclass
class Deployment:
    pair: Replicated
    app: Starlette
    http: AsyncClient
    engine: AsyncEngine  # the primary's, for setting up tenants

    @property
    def replicas(self) -> ReadReplicas:
        replicas: ReadReplicas | None = self.app.state.stores.replicas
        assert replicas is not None
        return replicas

    async def replica_seen_caught_up(self, timeout: float = 30) -> None:
        """Until the app's own watch has seen the replica replay all the primary has."""
        await self.pair.replayed_everything(timeout)
        target = parse_lsn(
            str(await self.pair.primary.execute("SELECT pg_current_wal_lsn()::text"))
        )
        deadline = time.monotonic() + timeout
        replica = self.replicas.replicas[0]
        while not (replica.up and replica.replay_lsn is not None and replica.replay_lsn >= target):
            if time.monotonic() > deadline:
                raise AssertionError(f"the app never saw the replica catch up: {replica}")
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture(scope="module")
async def deployment(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    base = tmp_path_factory.mktemp("replication")
    with primary_and_replica(base / "pg") as pair:
        await pair.primary.execute("CREATE DATABASE chimera")
        primary_url, replica_url = pair.primary.url("chimera"), pair.replica.url("chimera")
        engine = create_engine(primary_url, timeout=10)
        try:
            await migrations.upgrade(engine)
            async with another_app(
                settings,
                base / "data",
                database_url=primary_url,
                database_read_urls=replica_url,
                replica_max_lag_seconds=MAX_LAG,
            ) as application:
                transport = ASGITransport(app=application)
                async with AsyncClient(transport=transport, base_url="http://test") as http:
                    deployed = Deployment(pair, application, http, engine)
                    await deployed.replica_seen_caught_up()
                    yield deployed
        finally:
            await engine.dispose()


@contextmanager
def reads_by_server() -> Iterator[list[int]]:
    """The port of the server each loader statement went to, while the block runs."""
    ports: list[int] = []

    def watcher(engine: AsyncEngine, sql: str, args: Any) -> None:
        ports.append(engine.url.port or 5432)

    with reads.watch(watcher):
        yield ports


async def _tenant(deployed: Deployment) -> TenantClient:
    tenant = await new_tenant(deployed.engine, deployed.http)
    await deployed.replica_seen_caught_up()
    return tenant


async def _names(tenant: TenantClient, role: Role = Role.EDITOR) -> list[str]:
    body = await tenant.gql("{ campaigns { edges { node { name } } } }", role=role)
    assert "errors" not in body, body
    return [edge["node"]["name"] for edge in body["data"]["campaigns"]["edges"]]


async def _create(tenant: TenantClient, name: str) -> None:
    await tenant.data(
        'mutation($n: String!) { createCampaign(input: {name: $n, budget: "1"}) { campaign { id } } }',
        {"n": name},
    )


async def test_queries_read_from_the_replica_and_mutations_stay_on_the_primary(
    deployment: Deployment,
) -> None:
    tenant = await _tenant(deployment)
    with reads_by_server() as ports:
        await _create(tenant, "Written on the primary")
    assert set(ports) <= {deployment.pair.primary.port}  # the payload's reads
    await deployment.replica_seen_caught_up()
    with reads_by_server() as ports:
        assert await _names(tenant, Role.VIEWER) == ["Written on the primary"]
    assert ports and set(ports) == {deployment.pair.replica.port}


async def test_a_client_reads_its_own_write_while_the_replica_lags_behind_it(
    deployment: Deployment,
) -> None:
    tenant = await _tenant(deployment)
    await deployment.pair.replica.execute("SELECT pg_wal_replay_pause()")
    try:
        await _create(tenant, "Mine")
        with reads_by_server() as ports:
            assert await _names(tenant) == ["Mine"]  # the writer: from the primary
        assert set(ports) == {deployment.pair.primary.port}
        with reads_by_server() as ports:
            # Another client of the tenant tolerates the replica's slightly older state.
            assert await _names(tenant, Role.VIEWER) == []
        assert set(ports) == {deployment.pair.replica.port}
    finally:
        await deployment.pair.replica.execute("SELECT pg_wal_replay_resume()")
    await deployment.replica_seen_caught_up()
    with reads_by_server() as ports:
        assert await _names(tenant) == ["Mine"]  # replayed now: the writer reads the replica
    assert set(ports) == {deployment.pair.replica.port}


async def test_a_tenant_the_replica_has_not_replayed_yet_is_read_from_the_primary(
    deployment: Deployment,
) -> None:
    await deployment.pair.replica.execute("SELECT pg_wal_replay_pause()")
    try:
        # Created on the primary while the replica, within its allowed lag, replays nothing.
        tenant = await new_tenant(deployment.engine, deployment.http)
        with reads_by_server() as ports:
            body = await tenant.gql("{ viewer { tenant { slug } } }", role=Role.VIEWER)
        assert "errors" not in body, body
        assert body["data"]["viewer"]["tenant"]["slug"] == tenant.slug
        # Missed on the replica, confirmed on the primary.
        assert ports == [deployment.pair.replica.port, deployment.pair.primary.port]
    finally:
        await deployment.pair.replica.execute("SELECT pg_wal_replay_resume()")
    await deployment.replica_seen_caught_up()


async def test_a_replica_lagging_past_the_bound_gets_no_reads_and_the_fallback_is_counted(
    deployment: Deployment,
) -> None:
    tenant = await _tenant(deployment)
    before = total(await scrape(deployment.http), FALLBACKS)
    await deployment.pair.replica.execute("SELECT pg_wal_replay_pause()")
    try:
        await _create(tenant, "Not replayed")
        replica = deployment.replicas.replicas[0]
        deadline = time.monotonic() + 30
        while not (replica.lag_seconds is not None and replica.lag_seconds > MAX_LAG):
            assert time.monotonic() < deadline, replica
            await asyncio.sleep(0.1)
        with reads_by_server() as ports:
            assert await _names(tenant, Role.VIEWER) == ["Not replayed"]
        assert set(ports) == {deployment.pair.primary.port}
        assert total(await scrape(deployment.http), FALLBACKS) > before
    finally:
        await deployment.pair.replica.execute("SELECT pg_wal_replay_resume()")
    await deployment.replica_seen_caught_up()


async def test_a_replica_that_is_down_is_read_around_without_an_error(
    deployment: Deployment,
) -> None:
    tenant = await _tenant(deployment)
    await _create(tenant, "Still readable")
    await deployment.replica_seen_caught_up()
    deployment.pair.replica.stop("immediate")
    try:
        # At once, before the watch has noticed: the failed read is retried on the primary.
        with reads_by_server() as ports:
            assert await _names(tenant, Role.VIEWER) == ["Still readable"]
        assert ports[-1] == deployment.pair.primary.port
        replica = deployment.replicas.replicas[0]
        assert not replica.up
        with reads_by_server() as ports:
            assert await _names(tenant, Role.VIEWER) == ["Still readable"]
        assert set(ports) == {deployment.pair.primary.port}
    finally:
        deployment.pair.replica.start()
    await deployment.replica_seen_caught_up()
    with reads_by_server() as ports:
        assert await _names(tenant, Role.VIEWER) == ["Still readable"]
    assert set(ports) == {deployment.pair.replica.port}


def test_writes_and_background_work_are_bound_to_the_primary(deployment: Deployment) -> None:
    stores = deployment.app.state.stores
    assert stores.engine.url.port == deployment.pair.primary.port
    assert [r.engine.url.port for r in deployment.replicas.replicas] == [
        deployment.pair.replica.port
    ]
    assert deployment.replicas.primary is stores.engine


@pytest.mark.parametrize("value", ["16/B374D848", "0/0", "FFFFFFFF/FFFFFFFF"])
def test_lsns_compare_as_numbers(value: str) -> None:
    high, low = value.split("/")
    assert parse_lsn(value) == int(high, 16) * 2**32 + int(low, 16)
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
