"""Telling a store that is down from a bug in our code, for any store client we use."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def is_store_failure(exc: BaseException) -> bool:
    """Connection-level failures (refused, reset, timed out, pool exhausted)."""
    if isinstance(
        exc,
        OperationalError
        | PoolTimeout
        | OSError
        | TimeoutError
        | RedisConnectionError
        | RedisTimeoutError,
    ):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
