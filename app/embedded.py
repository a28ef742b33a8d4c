"""Start the embedded engines for every store whose URL is unset (development only).

The process that starts an engine owns it and stops it on exit; a second process (say,
`chimera token` while `make run` serves) attaches to the running engine instead of starting
another on the same files.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from app.settings import Settings
from app.stores.postgres.embedded import ensure_database_sync, start_embedded_postgres
from app.stores.redis.embedded import start_embedded_redis

DATABASE_NAME = "chimera"


class EmbeddedNotAllowed(RuntimeError):
    pass


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
        data_dir = settings.resolved_data_dir
        if wants_pg:
            server = start_embedded_postgres(data_dir / "postgres")
            stack.callback(server.stop)
            ensure_database_sync(server.socket_dir, DATABASE_NAME)
            updates["database_url"] = server.url(DATABASE_NAME)
        if wants_redis:
            redis_server = start_embedded_redis(data_dir / "redis")
            stack.callback(redis_server.stop)
            updates["redis_url"] = redis_server.url
        yield settings.model_copy(update=updates)
