"""Telling a store that is down from a bug in our code, for any store client we use."""

from __future__ import annotations

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def is_store_failure(exc: BaseException) -> bool:
    """Connection-level failures (refused, reset, timed out, pool exhausted, the server
    shutting down or out of connections), from SQLAlchemy or straight from asyncpg."""
    if isinstance(
        exc,
        OperationalError
        | PoolTimeout
        | OSError
        | TimeoutError
        | RedisConnectionError
        | RedisTimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError,
    ):
        return True
    if isinstance(exc, asyncpg.InterfaceError) and str(exc) == "connection is closed":
        # A pooled connection whose server went away while it sat in the pool, used by a
        # loader read straight through the driver (app/stores/postgres/reads.py): the
        # server's outage, not a misuse of the driver. The pool then discards it.
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
