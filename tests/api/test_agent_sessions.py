"""Agent session state: compare-and-set on a version, bounded, expiring, and writable only by
people who may edit or by the agent's own runtime."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.auth import Role
from tests.api.test_tasks import new_agent
from tests.support import CHARGE, TenantClient, count_redis_round_trips, error_codes

SET = """mutation($agent: ID!, $state: JSON, $expected: Int!, $ttl: Int) {
  setAgentSessionState(input: {agentId: $agent, state: $state, expectedVersion: $expected,
                               ttlSeconds: $ttl}) { session { state version expiresAt } } }"""
CLEAR = """mutation($agent: ID!) { clearAgentSession(input: {agentId: $agent}) { agentId } }"""
READ = """query($agent: ID!) { agent(id: $agent) { session { state version expiresAt } } }"""


async def write(
    tenant: TenantClient, agent: str, state: Any, expected: int, **options: Any
) -> dict[str, Any]:
    variables = {"agent": agent, "state": state, "expected": expected, "ttl": 60}
    return await tenant.gql(SET, variables, **options)


async def test_writes_compare_and_set_on_the_version(tenant: TenantClient) -> None:
    agent, _ = await new_agent(tenant)
    assert (await tenant.data(READ, {"agent": agent}))["agent"]["session"] is None
    first = await write(tenant, agent, {"step": 1}, 0)
    assert first["data"]["setAgentSessionState"]["session"]["version"] == 1
    stale = await write(tenant, agent, {"step": "stale"}, 0)
    assert error_codes(stale) == ["VERSION_CONFLICT"]
    assert stale["errors"][0]["extensions"]["currentVersion"] == 1
    second = await write(tenant, agent, {"step": 2}, 1)
    assert second["data"]["setAgentSessionState"]["session"]["version"] == 2
    found = (await tenant.data(READ, {"agent": agent}))["agent"]["session"]
    assert (found["state"], found["version"]) == ({"step": 2}, 2)
    assert (await tenant.data(CLEAR, {"agent": agent}))["clearAgentSession"]["agentId"] == agent
    assert (await tenant.data(READ, {"agent": agent}))["agent"]["session"] is None


async def test_concurrent_writers_lose_no_update(tenant: TenantClient) -> None:
    """Each of 20 writers adds itself to a list, reading again after every conflict: all 20
    end up in the state, in versions 1 to 20."""
    agent, pk = await new_agent(tenant)
    runtime = tenant.agent_token(pk)

    async def add(me: int) -> int:
        conflicts = 0
        while True:
            found = (await tenant.data(READ, {"agent": agent}, token=runtime))["agent"]["session"]
            version, items = (found["version"], found["state"]) if found else (0, [])
            body = await write(tenant, agent, [*items, me], version, token=runtime)
            if not body.get("errors"):
                return conflicts
            assert error_codes(body) == ["VERSION_CONFLICT"], body
            conflicts += 1

    conflicts = await asyncio.gather(*(add(i) for i in range(20)))
    found = (await tenant.data(READ, {"agent": agent}))["agent"]["session"]
    assert sorted(found["state"]) == list(range(20))
    assert found["version"] == 20
    assert sum(conflicts) > 0  # they did collide: the version is what kept every update


async def test_a_session_expires_after_its_ttl(tenant: TenantClient) -> None:
    agent, _ = await new_agent(tenant)
    body = await tenant.gql(SET, {"agent": agent, "state": 1, "expected": 0, "ttl": 1})
    assert not body.get("errors"), body
    await asyncio.sleep(1.3)
    assert (await tenant.data(READ, {"agent": agent}))["agent"]["session"] is None


async def test_only_editors_and_the_agents_own_runtime_write_it(tenant: TenantClient) -> None:
    agent, pk = await new_agent(tenant, "Mine")
    other, _ = await new_agent(tenant, "Other")
    assert error_codes(await write(tenant, agent, 1, 0, role=Role.VIEWER)) == ["FORBIDDEN"]
    runtime = tenant.agent_token(pk)
    assert not (await write(tenant, agent, 1, 0, token=runtime)).get("errors")
    assert error_codes(await write(tenant, other, 1, 0, token=runtime)) == ["FORBIDDEN"]
    assert error_codes(await tenant.gql(CLEAR, {"agent": other}, token=runtime)) == ["FORBIDDEN"]
    # Viewers read it, like everything of their tenant.
    found = await tenant.data(READ, {"agent": agent}, role=Role.VIEWER)
    assert found["agent"]["session"]["state"] == 1


@pytest.mark.parametrize(
    ("state", "ttl", "field"),
    [({"big": "x" * 70_000}, 60, "state"), (1, 0, "ttlSeconds"), (1, 8 * 86400, "ttlSeconds")],
)
async def test_bad_session_input_is_bad_user_input(
    tenant: TenantClient, state: Any, ttl: int, field: str
) -> None:
    agent, _ = await new_agent(tenant)
    body = await tenant.gql(SET, {"agent": agent, "state": state, "expected": 0, "ttl": ttl})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == field


async def test_sessions_of_5_and_50_agents_are_one_redis_call(tenant: TenantClient) -> None:
    for i in range(50):
        agent, _ = await new_agent(tenant, f"a{i}")
        if i % 5 == 0:
            await write(tenant, agent, {"i": i}, 0)
    query = """query($n: Int!) { agents(first: $n) { edges { node { session { version } } } } }"""
    trips = {}
    for n in (5, 50):
        with count_redis_round_trips() as log:
            data = await tenant.data(query, {"n": n})
        trips[n] = log.count
        assert len(data["agents"]["edges"]) == n
    assert trips[5] == trips[50] == 1 + CHARGE, trips
