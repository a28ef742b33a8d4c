"""hmget_many against a real Redis: one command for many hashes, and still one answer when
the server has forgotten the script (a restart or SCRIPT FLUSH)."""

from __future__ import annotations

import uuid

from app.stores.redis.client import create_redis
from app.stores.redis.scripts import hmget_many, load_scripts
from tests.support import count_redis_round_trips


async def test_many_hashes_are_read_in_one_command_in_key_order(redis_url: str) -> None:
    redis = create_redis(redis_url, timeout=5)
    try:
        prefix = f"test:{{{uuid.uuid4().hex}}}"  # one hash slot, as a tenant's keys are
        await redis.hset(f"{prefix}:a", mapping={"x": 1, "y": 2})
        await redis.hset(f"{prefix}:c", mapping={"y": 7})
        await load_scripts(redis)
        with count_redis_round_trips() as sent:
            values = await hmget_many(redis, [f"{prefix}:c", f"{prefix}:b", f"{prefix}:a"], "xy")
        assert values == [[None, b"7"], [None, None], [b"1", b"2"]]
        assert sent.count == 1
        assert await hmget_many(redis, [], "xy") == []
    finally:
        await redis.aclose()


async def test_a_forgotten_script_is_loaded_again_by_the_next_call(redis_url: str) -> None:
    redis = create_redis(redis_url, timeout=5)
    try:
        key = f"test:{uuid.uuid4().hex}"
        await redis.hset(key, "n", 5)
        await redis.script_flush()
        assert await hmget_many(redis, [key], ["n"]) == [[b"5"]]
        with count_redis_round_trips() as sent:  # by hash again from then on
            assert await hmget_many(redis, [key], ["n"]) == [[b"5"]]
        assert sent.count == 1
    finally:
        await redis.aclose()
