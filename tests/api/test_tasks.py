"""The task queue through GraphQL: enqueue once per key, claim under a lease, fenced reports,
retries with backoff to DEAD, and agent tokens that reach their own agent only."""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from app.auth import Role
from app.ids import decode_id
from app.queue.core import backoff_ms
from app.settings import Settings
from tests.processes import ROOT
from tests.support import (
    CHARGE,
    TenantClient,
    another_app,
    count_redis_round_trips,
    error_codes,
)

AGENT = """mutation($name: String!) { createAgent(input: {name: $name}) { agent { id } } }"""
CAMPAIGN = """mutation { createCampaign(input: {name: "Tasks"}) { campaign { id } } }"""
ENQUEUE = """mutation($input: EnqueueTaskInput!) { enqueueTask(input: $input) {
  task { id kind payload priority status attempts maxAttempts notBefore createdAt
         agent { id } campaign { id } } } }"""
CLAIM = """mutation($max: Int!, $lease: Int!) { claimTasks(input: {max: $max, leaseSeconds: $lease}) {
  leases { leaseToken expiresAt task { id kind status attempts startedAt leaseExpiresAt } } } }"""
HEARTBEAT = """mutation($id: ID!, $token: String!, $lease: Int!) {
  heartbeatTask(input: {id: $id, leaseToken: $token, leaseSeconds: $lease}) {
    task { leaseExpiresAt } } }"""
COMPLETE = """mutation($id: ID!, $token: String!, $result: JSON) {
  completeTask(input: {id: $id, leaseToken: $token, result: $result}) {
    task { status result finishedAt } } }"""
FAIL = """mutation($id: ID!, $token: String!, $retryable: Boolean!) {
  failTask(input: {id: $id, leaseToken: $token, error: "boom", retryable: $retryable}) {
    task { status attempts lastError notBefore } } }"""
TASK = """query($id: ID!) { task(id: $id) { id status attempts lastError result } }"""


async def new_agent(tenant: TenantClient, name: str = "Runner") -> tuple[str, uuid.UUID]:
    agent_id: str = (await tenant.data(AGENT, {"name": name}))["createAgent"]["agent"]["id"]
    return agent_id, decode_id(agent_id, "Agent")


async def enqueue(tenant: TenantClient, agent: str, **given: Any) -> dict[str, Any]:
    task_input = {"agentId": agent, "kind": "post", "idempotencyKey": uuid.uuid4().hex, **given}
    task: dict[str, Any] = (await tenant.data(ENQUEUE, {"input": task_input}))["enqueueTask"][
        "task"
    ]
    return task


async def claim(
    tenant: TenantClient, token: str, at_most: int = 10, lease: int = 60
) -> list[dict[str, Any]]:
    found = await tenant.data(CLAIM, {"max": at_most, "lease": lease}, token=token)
    leases: list[dict[str, Any]] = found["claimTasks"]["leases"]
    return leases


async def test_a_task_is_queued_claimed_and_completed_once(tenant: TenantClient) -> None:
    agent, pk = await new_agent(tenant)
    campaign = (await tenant.data(CAMPAIGN))["createCampaign"]["campaign"]["id"]
    task = await enqueue(tenant, agent, campaignId=campaign, payload={"text": "hi", "n": [1, 2]})
    assert task["status"] == "QUEUED" and task["attempts"] == 0 and task["maxAttempts"] == 3
    assert task["payload"] == {"n": [1, 2], "text": "hi"}
    assert (task["agent"]["id"], task["campaign"]["id"]) == (agent, campaign)
    runtime = tenant.agent_token(pk)
    (lease,) = await claim(tenant, runtime)
    assert lease["task"]["id"] == task["id"] and lease["task"]["status"] == "RUNNING"
    assert lease["task"]["attempts"] == 1 and lease["task"]["leaseExpiresAt"] == lease["expiresAt"]
    assert await claim(tenant, runtime) == []
    done = (
        await tenant.data(
            COMPLETE,
            {"id": task["id"], "token": lease["leaseToken"], "result": {"ok": True}},
            token=runtime,
        )
    )["completeTask"]["task"]
    assert done["status"] == "SUCCEEDED" and done["result"] == {"ok": True}
    # Reported again (a retry after a lost reply): the same task, nothing changes.
    again = await tenant.data(
        COMPLETE,
        {"id": task["id"], "token": lease["leaseToken"], "result": {"ok": 2}},
        token=runtime,
    )
    assert again["completeTask"]["task"] == done
    counts = """query($id: ID!) { agent(id: $id) { activeTasks queuedTasks
      tasks { totalCount edges { node { id status } } }
      succeeded: tasks(status: SUCCEEDED) { totalCount } } }"""
    found = (await tenant.data(counts, {"id": agent}))["agent"]
    assert (found["activeTasks"], found["queuedTasks"]) == (0, 0)
    assert found["tasks"]["edges"] == [{"node": {"id": task["id"], "status": "SUCCEEDED"}}]
    assert found["succeeded"]["totalCount"] == 1


async def test_an_enqueue_retried_with_its_key_returns_the_original_task(
    tenant: TenantClient,
) -> None:
    agent, _ = await new_agent(tenant)
    task_input = {"agentId": agent, "kind": "post", "idempotencyKey": "k-1", "payload": {"a": 1}}
    results = await asyncio.gather(
        *(tenant.data(ENQUEUE, {"input": task_input}) for _ in range(10))
    )
    assert len({r["enqueueTask"]["task"]["id"] for r in results}) == 1
    other = await tenant.gql(ENQUEUE, {"input": {**task_input, "payload": {"a": 2}}})
    assert error_codes(other) == ["IDEMPOTENCY_KEY_REUSED"]
    listed = """query($id: ID!) { agent(id: $id) { queuedTasks tasks { totalCount } } }"""
    found = (await tenant.data(listed, {"id": agent}))["agent"]
    assert (found["queuedTasks"], found["tasks"]["totalCount"]) == (1, 1)


async def test_an_enqueue_too_few_replicas_confirm_is_store_unavailable_and_kept_for_its_retry(
    tenant: TenantClient, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent, _ = await new_agent(tenant)
    task_input = {"agentId": agent, "kind": "post", "idempotencyKey": "wait", "payload": {"a": 1}}
    # More replicas than any test Redis has (none; one per primary on the cluster).
    waiting = another_app(settings, tmp_path, task_replicas=5, task_replica_timeout_ms=50)
    async with (
        waiting as application,
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as http,
    ):
        refused = await replace(tenant, http=http).gql(ENQUEUE, {"input": task_input})
    # Said once at start-up too, before any enqueue: the operator need not wait for errors.
    assert any("CHIMERA_TASK_REPLICAS=5, but Redis has" in r.message for r in caplog.records)
    assert error_codes(refused) == ["STORE_UNAVAILABLE"], refused
    assert "retry with the same idempotencyKey" in refused["errors"][0]["message"]
    # The primary kept the task: the retry returns it, and it is the agent's only one.
    retried = (await tenant.data(ENQUEUE, {"input": task_input}))["enqueueTask"]["task"]
    listed = """query($id: ID!) { agent(id: $id) { tasks { edges { node { id } } } } }"""
    found = (await tenant.data(listed, {"id": agent}))["agent"]["tasks"]["edges"]
    assert found == [{"node": {"id": retried["id"]}}]


async def test_keys_are_scoped_per_tenant(tenant: TenantClient, other_tenant: TenantClient) -> None:
    mine, _ = await new_agent(tenant)
    theirs, _ = await new_agent(other_tenant)
    task_input = {"kind": "post", "idempotencyKey": "shared-key"}
    a = await tenant.data(ENQUEUE, {"input": {**task_input, "agentId": mine}})
    b = await other_tenant.data(ENQUEUE, {"input": {**task_input, "agentId": theirs}})
    assert a["enqueueTask"]["task"]["id"] != b["enqueueTask"]["task"]["id"]


async def test_higher_priority_is_claimed_first_then_oldest(tenant: TenantClient) -> None:
    agent, pk = await new_agent(tenant)
    low = await enqueue(tenant, agent, priority=10)
    first = await enqueue(tenant, agent, priority=50)
    second = await enqueue(tenant, agent, priority=50)
    urgent = await enqueue(tenant, agent, priority=90)
    leases = await claim(tenant, tenant.agent_token(pk), at_most=10)
    assert [x["task"]["id"] for x in leases] == [urgent["id"], first["id"], second["id"], low["id"]]


async def test_not_before_delays_a_task(tenant: TenantClient) -> None:
    agent, pk = await new_agent(tenant)
    later = datetime.now(UTC) + timedelta(seconds=3)
    task = await enqueue(tenant, agent, notBefore=later.isoformat())
    assert task["status"] == "QUEUED" and task["notBefore"] is not None
    runtime = tenant.agent_token(pk)
    early = await claim(tenant, runtime)
    if datetime.now(UTC) < later:  # (a machine too busy to ask in 3 s proves nothing here)
        assert early == []
    await asyncio.sleep(max(0.0, (later - datetime.now(UTC)).total_seconds()) + 0.1)
    assert [x["task"]["id"] for x in early or await claim(tenant, runtime)] == [task["id"]]


async def test_an_expired_lease_is_fenced_and_the_task_goes_to_the_next_claim(
    tenant: TenantClient,
) -> None:
    agent, pk = await new_agent(tenant)
    task = await enqueue(tenant, agent)
    runtime = tenant.agent_token(pk)
    (first,) = await claim(tenant, runtime, lease=1)
    await asyncio.sleep(1.2)
    for query, variables in (
        (COMPLETE, {"result": 1}),
        (HEARTBEAT, {"lease": 30}),
        (FAIL, {"retryable": True}),
    ):
        late = await tenant.gql(
            query, {"id": task["id"], "token": first["leaseToken"], **variables}, token=runtime
        )
        assert error_codes(late) == ["LEASE_EXPIRED"], late
    (second,) = await claim(tenant, runtime)
    assert second["task"]["id"] == task["id"] and second["task"]["attempts"] == 2
    assert second["leaseToken"] != first["leaseToken"]
    late = await tenant.gql(
        COMPLETE, {"id": task["id"], "token": first["leaseToken"], "result": 1}, token=runtime
    )
    assert error_codes(late) == ["LEASE_EXPIRED"]
    await tenant.data(
        COMPLETE, {"id": task["id"], "token": second["leaseToken"], "result": 2}, token=runtime
    )
    found = (await tenant.data(TASK, {"id": task["id"]}))["task"]
    assert (found["status"], found["result"], found["attempts"]) == ("SUCCEEDED", 2, 2)
    assert found["lastError"] == "lease expired during attempt 1"


async def test_a_heartbeat_keeps_the_lease(tenant: TenantClient) -> None:
    agent, pk = await new_agent(tenant)
    task = await enqueue(tenant, agent)
    runtime = tenant.agent_token(pk)
    (lease,) = await claim(tenant, runtime, lease=3)
    for _ in range(3):  # 4.5 s in all: the first lease alone would have run out
        await asyncio.sleep(1.5)
        await tenant.data(
            HEARTBEAT, {"id": task["id"], "token": lease["leaseToken"], "lease": 3}, token=runtime
        )
    assert await claim(tenant, runtime) == []
    await tenant.data(
        COMPLETE, {"id": task["id"], "token": lease["leaseToken"], "result": None}, token=runtime
    )


async def test_failures_back_off_then_go_dead_and_an_admin_retries_them(
    tenant: TenantClient,
) -> None:
    agent, pk = await new_agent(tenant)
    task = await enqueue(tenant, agent, maxAttempts=2)
    runtime = tenant.agent_token(pk)
    (lease,) = await claim(tenant, runtime)
    before = datetime.now(UTC)
    failed = (
        await tenant.data(
            FAIL, {"id": task["id"], "token": lease["leaseToken"], "retryable": True}, token=runtime
        )
    )["failTask"]["task"]
    assert (failed["status"], failed["attempts"], failed["lastError"]) == ("QUEUED", 1, "boom")
    delay = datetime.fromisoformat(failed["notBefore"]) - before
    # Attempt 1's backoff is 1 s with jitter between half and all of it (plus the time the
    # failTask request took to reach Redis).
    assert timedelta(milliseconds=backoff_ms(1, 0.5) - 50) <= delay
    assert delay <= timedelta(milliseconds=backoff_ms(1, 1.0) + 5000)
    early = await claim(tenant, runtime)
    if datetime.now(UTC) < datetime.fromisoformat(failed["notBefore"]):
        assert early == []
    await asyncio.sleep(
        max(0.0, (datetime.fromisoformat(failed["notBefore"]) - datetime.now(UTC)).total_seconds())
        + 0.1
    )
    (lease,) = early or await claim(tenant, runtime)
    dead = (
        await tenant.data(
            FAIL, {"id": task["id"], "token": lease["leaseToken"], "retryable": True}, token=runtime
        )
    )["failTask"]["task"]
    assert (dead["status"], dead["attempts"]) == ("DEAD", 2)
    dead_list = "{ deadTasks { totalCount edges { node { id status } } } }"
    assert error_codes(await tenant.gql(dead_list)) == ["FORBIDDEN"]
    listed = (await tenant.data(dead_list, role=Role.ADMIN))["deadTasks"]
    assert listed["edges"] == [{"node": {"id": task["id"], "status": "DEAD"}}]
    retry = "mutation($id: ID!) { retryTask(input: {id: $id}) { task { status attempts } } }"
    assert error_codes(await tenant.gql(retry, {"id": task["id"]})) == ["FORBIDDEN"]
    again = await tenant.data(retry, {"id": task["id"]}, role=Role.ADMIN)
    assert again["retryTask"]["task"] == {"status": "QUEUED", "attempts": 0}
    assert (await tenant.data(dead_list, role=Role.ADMIN))["deadTasks"]["totalCount"] == 0
    assert error_codes(await tenant.gql(retry, {"id": task["id"]}, role=Role.ADMIN)) == ["CONFLICT"]


async def test_a_failure_that_is_not_retryable_is_final(tenant: TenantClient) -> None:
    agent, pk = await new_agent(tenant)
    task = await enqueue(tenant, agent)
    runtime = tenant.agent_token(pk)
    (lease,) = await claim(tenant, runtime)
    failed = await tenant.data(
        FAIL, {"id": task["id"], "token": lease["leaseToken"], "retryable": False}, token=runtime
    )
    assert failed["failTask"]["task"]["status"] == "FAILED"
    assert await claim(tenant, runtime) == []


async def test_cancelling_voids_a_running_lease(tenant: TenantClient) -> None:
    agent, pk = await new_agent(tenant)
    task = await enqueue(tenant, agent)
    runtime = tenant.agent_token(pk)
    (lease,) = await claim(tenant, runtime)
    cancel = "mutation($id: ID!) { cancelTask(input: {id: $id}) { task { status } } }"
    assert error_codes(await tenant.gql(cancel, {"id": task["id"]}, role=Role.VIEWER)) == [
        "FORBIDDEN"
    ]
    cancelled = await tenant.data(cancel, {"id": task["id"]})
    assert cancelled["cancelTask"]["task"]["status"] == "CANCELLED"
    late = await tenant.gql(
        COMPLETE, {"id": task["id"], "token": lease["leaseToken"], "result": 1}, token=runtime
    )
    assert error_codes(late) == ["LEASE_EXPIRED"]
    assert error_codes(await tenant.gql(cancel, {"id": task["id"]})) == ["CONFLICT"]


async def test_an_agent_token_reaches_its_own_agent_only(tenant: TenantClient) -> None:
    mine, mine_pk = await new_agent(tenant, "Mine")
    other, other_pk = await new_agent(tenant, "Other")
    my_task = await enqueue(tenant, mine)
    their_task = await enqueue(tenant, other)
    runtime = tenant.agent_token(mine_pk)
    own = """query($id: ID!) { agent(id: $id) { name queuedTasks tasks { edges { node { id } } } } }"""
    found = (await tenant.data(own, {"id": mine}, token=runtime))["agent"]
    assert found["name"] == "Mine" and found["queuedTasks"] == 1
    assert error_codes(await tenant.gql(own, {"id": other}, token=runtime)) == ["FORBIDDEN"]
    assert error_codes(await tenant.gql(TASK, {"id": their_task["id"]}, token=runtime)) == [
        "FORBIDDEN"
    ]
    assert (await tenant.data(TASK, {"id": my_task["id"]}, token=runtime))["task"]["id"]
    for elsewhere in (
        "{ campaigns { totalCount } }",
        "{ agents { totalCount } }",
        '{ semanticSearch(query: "x") { score } }',
        """query($id: ID!) { agent(id: $id) { campaigns { totalCount } } }""",
    ):
        refused = await tenant.gql(elsewhere, {"id": mine}, token=runtime)
        assert error_codes(refused) == ["FORBIDDEN"] and refused["data"] is None, elsewhere
    assert error_codes(
        await tenant.gql(
            ENQUEUE, {"input": {"agentId": mine, "kind": "x", "idempotencyKey": "k"}}, token=runtime
        )
    ) == ["FORBIDDEN"]
    # Its claims never hand out another agent's work, and it cannot report on it.
    (lease,) = await claim(tenant, runtime)
    assert lease["task"]["id"] == my_task["id"]
    other_runtime = tenant.agent_token(other_pk)
    (their_lease,) = await claim(tenant, other_runtime)
    stolen = await tenant.gql(
        COMPLETE,
        {"id": their_task["id"], "token": their_lease["leaseToken"], "result": 1},
        token=runtime,
    )
    assert error_codes(stolen) == ["FORBIDDEN"]
    # People's tokens cannot claim: a claim belongs to a runtime.
    assert error_codes(await tenant.gql(CLAIM, {"max": 1, "lease": 5}, role=Role.ADMIN)) == [
        "FORBIDDEN"
    ]


async def test_another_tenants_tasks_are_invisible(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    agent, _ = await new_agent(tenant)
    task = await enqueue(tenant, agent)
    assert (await other_tenant.data(TASK, {"id": task["id"]}))["task"] is None
    cancel = "mutation($id: ID!) { cancelTask(input: {id: $id}) { task { status } } }"
    assert error_codes(await other_tenant.gql(cancel, {"id": task["id"]})) == ["NOT_FOUND"]
    foreign_agent = await other_tenant.gql(
        ENQUEUE, {"input": {"agentId": agent, "kind": "x", "idempotencyKey": "k"}}
    )
    assert error_codes(foreign_agent) == ["NOT_FOUND"]


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"kind": ""}, "kind"),
        ({"kind": "has space"}, "kind"),
        ({"priority": 101}, "priority"),
        ({"maxAttempts": 0}, "maxAttempts"),
        ({"payload": {"big": "x" * 70_000}}, "payload"),
        ({"notBefore": "2099-01-01T00:00:00+00:00"}, "notBefore"),
        ({"notBefore": "0001-01-01T00:00:00+14:00"}, "notBefore"),  # year 0 in UTC
        ({"notBefore": "2030-01-01T00:00:00"}, "notBefore"),  # no zone
        ({"idempotencyKey": ""}, "idempotencyKey"),
    ],
)
async def test_bad_task_input_is_bad_user_input(
    tenant: TenantClient, given: dict[str, Any], field: str
) -> None:
    agent, _ = await new_agent(tenant)
    task_input = {"agentId": agent, "kind": "post", "idempotencyKey": uuid.uuid4().hex, **given}
    body = await tenant.gql(ENQUEUE, {"input": task_input})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["extensions"].get("field") == field


async def test_task_counts_of_5_and_50_agents_are_one_redis_call(tenant: TenantClient) -> None:
    for i in range(50):
        agent, _ = await new_agent(tenant, f"a{i}")
        if i % 7 == 0:
            await enqueue(tenant, agent)
    query = """query($n: Int!) { agents(first: $n) { edges { node {
      activeTasks queuedTasks tasks(first: 3) { totalCount edges { node { id status } } } } } } }"""
    trips = {}
    for n in (5, 50):
        with count_redis_round_trips() as log:
            data = await tenant.data(query, {"n": n})
        trips[n] = log.count
        assert len(data["agents"]["edges"]) == n
    # Counts, pages and totals: one call each, whatever the number of agents.
    assert trips[5] == trips[50] == 3 + CHARGE, trips


async def test_the_sweeper_takes_back_a_lease_that_no_runtime_renews(tenant: TenantClient) -> None:
    """No claim comes after the runtime died: the app's sweeper ends the attempt anyway."""
    agent, pk = await new_agent(tenant)
    task = await enqueue(tenant, agent, maxAttempts=1)
    await claim(tenant, tenant.agent_token(pk), lease=1)
    query = """query($id: ID!, $agent: ID!) { task(id: $id) { status lastError }
      agent(id: $agent) { activeTasks queuedTasks } }"""
    async with asyncio.timeout(15):
        while True:
            found = await tenant.data(query, {"id": task["id"], "agent": agent})
            if found["task"]["status"] != "RUNNING":
                break
            await asyncio.sleep(0.2)
    assert found["task"] == {"status": "DEAD", "lastError": "lease expired during attempt 1"}
    assert found["agent"] == {"activeTasks": 0, "queuedTasks": 0}


async def test_peoples_interventions_are_in_the_agents_history(tenant: TenantClient) -> None:
    agent, _ = await new_agent(tenant)
    task = await enqueue(tenant, agent)
    cancel = "mutation($id: ID!) { cancelTask(input: {id: $id}) { task { status } } }"
    await tenant.data(cancel, {"id": task["id"]})
    history = """query($id: ID!) { agent(id: $id) { history(first: 5) { edges { node {
      action entityId changes { field before after } } } } } }"""
    entries = (await tenant.data(history, {"id": agent}))["agent"]["history"]["edges"]
    latest = entries[0]["node"]
    assert (latest["action"], latest["entityId"]) == ("task.cancel", task["id"])
    assert {"field": "status", "before": "QUEUED", "after": "CANCELLED"} in latest["changes"]


async def test_a_runtime_killed_mid_task_loses_it_to_the_next_claim(
    tenant: TenantClient, live_url: str
) -> None:
    agent, pk = await new_agent(tenant)
    task = await enqueue(tenant, agent)
    runtime = tenant.agent_token(pk)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.api.task_runtime",
        f"http://{live_url}/graphql",
        runtime,
        "5",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            claimed_id, dead_token = (await process.stdout.readline()).decode().split()
        assert claimed_id == task["id"]
        assert await claim(tenant, runtime) == []  # it holds the lease
    finally:
        process.kill()  # SIGKILL: no goodbye, no heartbeat, no report
        await process.wait()
    async with asyncio.timeout(30):
        while True:  # the lease runs out 5 s after the claim; then the next claim has it
            leases = await claim(tenant, runtime)
            if leases:
                break
            await asyncio.sleep(0.2)
    (lease,) = leases
    assert (lease["task"]["id"], lease["task"]["attempts"]) == (task["id"], 2)
    late = await tenant.gql(
        COMPLETE, {"id": task["id"], "token": dead_token, "result": 1}, token=runtime
    )
    assert error_codes(late) == ["LEASE_EXPIRED"]


async def test_a_waiting_claim_gets_work_as_soon_as_it_is_queued(tenant: TenantClient) -> None:
    agent, pk = await new_agent(tenant)
    runtime = tenant.agent_token(pk)
    wait = """mutation($wait: Int!) { claimTasks(input: {max: 1, leaseSeconds: 60,
      waitSeconds: $wait}) { leases { task { id } } } }"""
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = asyncio.ensure_future(tenant.data(wait, {"wait": 20}, token=runtime))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    task = await enqueue(tenant, agent)
    found = await waiting
    assert found["claimTasks"]["leases"] == [{"task": {"id": task["id"]}}]
    assert loop.time() - started < 10  # woken by the event, not by the end of the wait
    started = loop.time()
    assert (await tenant.data(wait, {"wait": 1}, token=runtime))["claimTasks"]["leases"] == []
    assert loop.time() - started >= 1
    refused = await tenant.gql(wait, {"wait": 31}, token=runtime)
    assert error_codes(refused) == ["BAD_USER_INPUT"]
