"""Agent.session: an agent's working state as GraphQL sees it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.scalars import JSON

from app.agent_sessions import SessionState
from app.cost.directives import CostStore, Store
from resolvers.batching import settle
from resolvers.info import Info

if TYPE_CHECKING:
    from resolvers.agents.types import Agent


@strawberry.type(
    description="An agent's working state, kept in Redis until it expires.",
    directives=[Store(name=CostStore.REDIS)],
)
class AgentSession:
    state: JSON | None
    version: int = strawberry.field(
        description="1 after the first write, one more after each: pass it as expectedVersion."
    )
    expires_at: datetime

    @classmethod
    def of(cls, found: SessionState) -> AgentSession:
        return cls(
            state=json.loads(found.state), version=found.version, expires_at=found.expires_at
        )


async def sessions_many(agents: Sequence[Agent], info: Info) -> list[Any]:
    load = info.context.loaders.session_by_agent.load
    found = await settle([load(agent.pk) for agent in agents])
    return [f if f is None or isinstance(f, Exception) else AgentSession.of(f) for f in found]
