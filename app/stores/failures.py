"""Telling a store that is down from a bug in our code, for any store client we use."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def is_store_failure(exc: BaseException) -> bool:
    """Connection-level failures (refused, reset, timed out, pool exhausted, the server
    shutting down or out of connections), from SQLAlchemy or straight from asyncpg; and a
    Redis Cluster between a primary's death and its replica's promotion (CLUSTERDOWN,
    TRYAGAIN, a slot no live node serves)."""
    if isinstance(
        exc,
        OperationalError
        | PoolTimeout
        | OSError
        | TimeoutError
        | RedisConnectionError
        | RedisTimeoutError
        | ClusterDownError
        | TryAgainError
        | SlotNotCoveredError
        | asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError,
    ):
        return True
    if _redis_connection_torn_down(exc):
        return True
    if isinstance(exc, asyncpg.InterfaceError) and str(exc) == "connection is closed":
        # A pooled connection whose server went away while it sat in the pool, used by a
        # loader read straight through the driver (app/stores/postgres/reads.py): the
        # server's outage, not a misuse of the driver. The pool then discards it.
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


_REDIS_CONNECTION_MODULE = Path("redis", "asyncio", "connection.py")


def _redis_connection_torn_down(exc: BaseException) -> bool:
    """redis-py's asyncio cluster client can send a command on a connection that a failover
    has just torn down (its stream writer gone): an AttributeError raised inside redis-py's
    connection module (seen in tests/api/test_redis_cluster_failover.py). That is the store
    going away under the call, not a bug of ours, and the next call reconnects."""
    if not isinstance(exc, AttributeError):
        return False
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and Path(frame.tb_frame.f_code.co_filename).parts[-3:] == (
        _REDIS_CONNECTION_MODULE.parts
    )
