"""Which exceptions mean "a store went away" (STORE_UNAVAILABLE) rather than a bug of ours
(INTERNAL_SERVER_ERROR)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.exceptions import ClusterDownError, ResponseError, TryAgainError

from app.stores.failures import is_store_failure


def _raised_in(filename: str, error: str) -> BaseException:
    """An exception whose innermost frame is in ``filename``, as if that module raised it."""
    code = compile(f"raise {error}", filename, "exec")
    try:
        exec(code, {})
    except BaseException as exc:  # returned to the test
        return exc
    raise AssertionError("nothing raised")


def test_an_attribute_error_inside_redis_pys_connection_is_the_store_going_away() -> None:
    """redis-py's cluster client, sending on a connection a failover tore down."""
    torn_down = _raised_in(
        str(Path("site-packages", "redis", "asyncio", "connection.py")),
        "AttributeError('no attribute writelines')",
    )
    assert is_store_failure(torn_down)


@pytest.mark.parametrize("where", ["app/loaders.py", "site-packages/redis/asyncio/cluster.py"])
def test_an_attribute_error_anywhere_else_is_a_bug(where: str) -> None:
    assert not is_store_failure(_raised_in(where, "AttributeError('x')"))


def test_a_cluster_between_primaries_is_unavailable_but_a_bad_command_is_not() -> None:
    assert is_store_failure(ClusterDownError("CLUSTERDOWN The cluster is down"))
    assert is_store_failure(TryAgainError("TRYAGAIN"))
    assert not is_store_failure(ResponseError("ERR wrong number of arguments"))
