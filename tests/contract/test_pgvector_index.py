"""The vector index contract on pgvector (always the embedded PostgreSQL unless
TEST_PGVECTOR_URL names another server with the extension)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from app.errors import StoreUnavailable
from app.stores.vectors.pgvector import PgVectorIndex, open_pgvector
from tests.contract.vector_contract import VectorIndexContract
from tests.engines import create_database, drop_database, has_extension


@pytest_asyncio.fixture(scope="module")
async def index(pgvector_url: str) -> AsyncIterator[PgVectorIndex]:
    async with open_pgvector(pgvector_url, timeout=10) as opened:
        yield opened


class TestPgVector(VectorIndexContract):
    pass


async def test_a_server_without_the_extension_is_refused_in_one_line(pg_server_url: str) -> None:
    if await has_extension(pg_server_url, "vector"):
        pytest.skip("this server has pgvector; nothing to refuse")
    url = await create_database(pg_server_url, prefix="chimera_novector")
    try:
        with pytest.raises(StoreUnavailable, match="has no 'vector' extension") as raised:
            async with open_pgvector(url, timeout=5):
                pass
        assert "\n" not in raised.value.message
    finally:
        await drop_database(url)
