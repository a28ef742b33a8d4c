"""Agents' session states, one script call per batch of agents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from app.agent_sessions import GET_MANY, SessionState, session_from
from app.stores.redis import keys
from loaders.base import TenantLoader


class SessionByAgentLoader(TenantLoader[UUID, SessionState | None]):
    store = "Redis"

    async def fetch(self, keys_: Sequence[UUID]) -> list[SessionState | None]:
        names = [keys.agent_session(self.tenant_id, pk) for pk in keys_]
        now = datetime.now(UTC)
        return [session_from(reply, now) for reply in await GET_MANY(self.ctx.redis, names, [])]
