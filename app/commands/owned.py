"""Loading a row a command is about to act on, only if the caller's tenant owns it.

Every write starts here, so "another tenant's id" and "no such id" are one case with one
answer (NOT_FOUND), whichever command is asked.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import Principal
from app.errors import NotFound


async def owned_row(
    conn: AsyncConnection,
    table: Table,
    principal: Principal,
    pk: uuid.UUID,
    *,
    what: str,
    argument: str,
    lock: bool = False,
) -> Row[Any]:
    """The row, locked for update when ``lock``; NOT_FOUND names ``what`` and ``argument``."""
    query = select(table).where(table.c.tenant_id == principal.tenant_id, table.c.id == pk)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"{what} not found", argument=argument)
    return row
