"""hmget_many and evalsha_each against a real Redis: one command for many hashes, one round
trip for many script calls, and still one answer each when the server has forgotten the
script (a restart or SCRIPT FLUSH)."""

from __future__ import annotations

import uuid

import pytest

from app.stores.redis.client import create_redis
from app.stores.redis.scripts import (
    LuaScript,
    ScriptCall,
    evalsha_each,
    hmget_many,
    load_scripts,
)
from tests.support import count_redis_round_trips

# Not idempotent on purpose: a call run twice would show as a count of 2.
COUNT_ONCE = LuaScript("return redis.call('INCR', KEYS[1])")


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


@pytest.mark.whole_redis_server
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
        await load_scripts(redis)  # as the app's start-up left them, for the tests after this
        await redis.aclose()


@pytest.mark.whole_redis_server
async def test_calls_a_forgotten_script_refused_run_again_once_each_and_errors_stay_in_place(
    redis_url: str,
) -> None:
    redis = create_redis(redis_url, timeout=5)
    try:
        run = uuid.uuid4().hex
        counters = [f"test:{{{run}-{i}}}:n" for i in range(3)]
        wrong_type = f"test:{{{run}-x}}:n"
        await redis.hset(wrong_type, "a", 1)  # INCR on a hash fails: that call's own error
        calls: list[ScriptCall] = [
            ([key], []) for key in [counters[0], wrong_type, counters[1], counters[2]]
        ]
        await redis.script_flush()  # as after a restart: every call answers NOSCRIPT first
        replies = await evalsha_each(redis, COUNT_ONCE, calls)
        assert [replies[0], replies[2], replies[3]] == [1, 1, 1]
        assert isinstance(replies[1], Exception)
        assert "WRONGTYPE" in str(replies[1])
        with count_redis_round_trips() as sent:  # loaded now: by hash, one round trip
            replies = await evalsha_each(redis, COUNT_ONCE, calls)
        assert [replies[0], replies[2], replies[3]] == [2, 2, 2]  # each ran once per round
        if not redis_url.startswith("redis+cluster"):
            assert sent.count == 1
    finally:
        await load_scripts(redis)
        await redis.aclose()
