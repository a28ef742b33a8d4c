"""Every key of a tenant in one Redis Cluster slot, and the keys of the layout before that
moved to it once, with their values, expiries and stream ids."""

from __future__ import annotations

import inspect
import logging
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from starlette.applications import Starlette

from app.ids import decode_id
from app.ratelimit.buckets import client_bucket, tenant_bucket
from app.revocations import revoked_key
from app.stores.redis import keys
from app.stores.redis.layout import LAYOUT_KEY, layout_2_name, upgrade_layout
from tests.support import TenantClient

CREATE = 'mutation { createCampaign(input: {name: "Kept"}) { campaign { id } } }'
ENGAGEMENT = "query($id: ID!) { campaign(id: $id) { engagement { clicks likes } } }"


def _every_key_of(tenant_id: uuid.UUID) -> list[str]:
    """Each key function of app/stores/redis/keys.py (and the two modules that add theirs),
    called for one tenant with placeholder arguments."""
    made = []
    for name, function in inspect.getmembers(keys, inspect.isfunction):
        parameters = list(inspect.signature(function).parameters)
        if parameters[:1] != ["tenant_id"]:
            continue
        filler: dict[str, Any] = {p: uuid.uuid4() if p.endswith("_id") else "x" for p in parameters}
        filler.update(tenant_id=tenant_id)
        filler.update({p: 7 for p in ("event_id", "limit") if p in parameters})
        made.append(function(**filler))
        assert made[-1].startswith(keys.tenant_prefix(tenant_id)), name
    made += [
        tenant_bucket(tenant_id),
        client_bucket(tenant_id, "client"),
        revoked_key(tenant_id, "jti"),
        # Built inside the task scripts from the prefix (app/queue/scripts.py).
        keys.tenant_prefix(tenant_id) + "tasks:seq",
        keys.tenant_prefix(tenant_id) + "tasks:retire",
    ]
    return made


def test_every_key_of_a_tenant_hashes_to_one_slot_and_tenants_spread_over_slots() -> None:
    tenants = [uuid.uuid4() for _ in range(50)]
    slots = set()
    for tenant_id in tenants:
        made = _every_key_of(tenant_id)
        assert len(made) > 20
        assert {key_slot(key.encode()) for key in made} == {key_slot(str(tenant_id).encode())}
        slots.add(key_slot(str(tenant_id).encode()))
    assert len(slots) > 45  # the tag is the whole id, not a shared prefix of it


def test_only_keys_of_the_old_layout_get_a_new_name() -> None:
    tenant_id = uuid.uuid4()
    old = f"chimera:t:{tenant_id}:campaign:{uuid.uuid4()}:engagement".encode()
    assert layout_2_name(old) == old.replace(
        str(tenant_id).encode(), b"{%s}" % str(tenant_id).encode()
    )
    assert layout_2_name(keys.campaign_engagement(tenant_id, uuid.uuid4()).encode()) is None
    assert layout_2_name(b"chimera:t:not-a-tenant:x") is None
    assert layout_2_name(LAYOUT_KEY.encode()) is None


@pytest.fixture
async def redis(app: Starlette) -> Redis:
    client: Redis = app.state.stores.redis
    return client


async def _as_before_the_upgrade(redis: Redis) -> None:
    await redis.delete(LAYOUT_KEY)


async def test_keys_of_the_old_layout_move_once_with_values_expiry_and_stream_ids(
    redis: Redis,
) -> None:
    tenant_id = uuid.uuid4()
    old = f"chimera:t:{tenant_id}:"
    await redis.hset(f"{old}campaign:c1:engagement", mapping={"clicks": 5, "likes": 2})
    first = await redis.xadd(f"{old}events", {"event": "1", "type": "CREATED"})
    second = await redis.xadd(f"{old}events", {"event": "2", "type": "UPDATED"})
    await redis.zadd(f"{old}agent:a1:ready", {"task-1": 10.0})
    await redis.set(f"{old}task-key:abc", "task-1 fp", ex=3600)
    await _as_before_the_upgrade(redis)

    assert await upgrade_layout(redis) == 4
    new = keys.tenant_prefix(tenant_id)
    assert await redis.hgetall(f"{new}campaign:c1:engagement") == {b"clicks": b"5", b"likes": b"2"}
    entries: Any = await redis.xrange(f"{new}events")
    assert [entry_id for entry_id, _ in entries] == [first, second]
    assert await redis.zrange(f"{new}agent:a1:ready", 0, -1, withscores=True) == [(b"task-1", 10.0)]
    assert await redis.get(f"{new}task-key:abc") == b"task-1 fp"
    assert 3500 < await redis.ttl(f"{new}task-key:abc") <= 3600
    assert [key async for key in redis.scan_iter(match=f"{old}*")] == []
    assert await redis.get(LAYOUT_KEY) == b"2"
    # Recorded: the next start does not scan again.
    await redis.hset(f"{old}campaign:c2:engagement", "clicks", 1)
    assert await upgrade_layout(redis) == 0
    assert await redis.exists(f"{old}campaign:c2:engagement")
    await redis.delete(f"{old}campaign:c2:engagement")


async def test_an_old_key_whose_new_name_exists_is_left_and_logged(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    tenant_id = uuid.uuid4()
    old, new = f"chimera:t:{tenant_id}:similar-generation", keys.similar_generation(tenant_id)
    await redis.set(old, "3")
    await redis.set(new, "9")
    await _as_before_the_upgrade(redis)
    with caplog.at_level(logging.WARNING, logger="app.stores.redis.layout"):
        assert await upgrade_layout(redis) == 0
    assert (await redis.get(new), await redis.get(old)) == (b"9", b"3")
    assert "not moved" in caplog.text
    await redis.delete(old)


async def test_a_counter_of_the_old_layout_is_served_after_the_upgrade(
    tenant: TenantClient, redis: Redis
) -> None:
    campaign = (await tenant.data(CREATE))["createCampaign"]["campaign"]["id"]
    campaign_id = decode_id(campaign, "Campaign")
    new = keys.campaign_engagement(tenant.id, campaign_id)
    old = new.replace(f"{{{tenant.id}}}", str(tenant.id))
    await redis.hset(old, mapping={"clicks": 41, "likes": 3})
    await redis.delete(new)
    await _as_before_the_upgrade(redis)
    assert await upgrade_layout(redis) >= 1
    data = await tenant.data(ENGAGEMENT, {"id": campaign})
    assert data["campaign"]["engagement"] == {"clicks": 41, "likes": 3}
