"""With PostgreSQL unreachable, mutations and queries say STORE_UNAVAILABLE, never a bare
internal error, and the same requests succeed once it answers again."""

from __future__ import annotations

import dataclasses

from starlette.applications import Starlette

from app.stores.postgres.engine import create_engine
from tests.processes import free_port
from tests.support import TenantClient, error_codes

CREATE = 'mutation { createCampaign(input: {name: "During an outage"}) { campaign { id } } }'
LIST = "{ campaigns(first: 5) { edges { node { id name } } } }"


async def test_an_unreachable_postgresql_is_store_unavailable_for_mutations_and_queries(
    app: Starlette, tenant: TenantClient
) -> None:
    stores = app.state.stores
    # Nothing listens on a freshly picked free port: every connect is refused.
    dead = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", timeout=1)
    app.state.stores = dataclasses.replace(stores, engine=dead)
    try:
        created = await tenant.gql(CREATE)
        listed = await tenant.gql(LIST)
    finally:
        app.state.stores = stores
        await dead.dispose()
    assert error_codes(created) == ["STORE_UNAVAILABLE"]
    assert "Traceback" not in str(created) and "127.0.0.1" not in str(created)
    assert error_codes(listed) == ["STORE_UNAVAILABLE"]
    assert listed["errors"][0]["extensions"]["store"] == "PostgreSQL"
    healed = await tenant.data(CREATE)
    assert healed["createCampaign"]["campaign"]["id"]
