"""A repeated operation is parsed and validated once: the caches must actually hit, or every
request and every subscription pays for validation again."""

from __future__ import annotations

from typing import Any

from strawberry.extensions.validation_cache import _get_validate_cache

from tests.support import TenantClient

QUERY = "query Cached($n: Int) { campaigns(first: $n) { edges { node { id name } } } }"


async def test_the_same_operation_twice_is_validated_once(tenant: TenantClient) -> None:
    cache: Any = _get_validate_cache(256)  # an lru_cache, typed as a plain callable
    await tenant.data(QUERY, {"n": 1})
    before = cache.cache_info()
    await tenant.data(QUERY, {"n": 2})
    after = cache.cache_info()
    assert after.hits == before.hits + 1
    assert after.misses == before.misses
