"""setAgentSessionState and clearAgentSession: compare-and-set on the session's version."""

from __future__ import annotations

from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from app.agent_sessions import DEFAULT_TTL_SECONDS, clear_state, set_state
from app.auth import Role
from app.cost.directives import REDIS
from app.errors import Forbidden, NotFound
from app.ids import decode_id
from resolvers.info import Info
from resolvers.sessions.types import AgentSession


@strawberry.input
class SetAgentSessionStateInput:
    agent_id: strawberry.ID
    state: JSON | None = strawberry.field(description="At most 64 KiB of JSON.")
    expected_version: int = strawberry.field(
        description="The version you read (0 if there was no session): another one is "
        "VERSION_CONFLICT (extensions.currentVersion), and nothing is written."
    )
    ttl_seconds: int = strawberry.field(
        default=DEFAULT_TTL_SECONDS, description="1 s to 7 days, from this write."
    )


@strawberry.input
class ClearAgentSessionInput:
    agent_id: strawberry.ID


@strawberry.type
class AgentSessionPayload:
    session: AgentSession


@strawberry.type
class ClearAgentSessionPayload:
    agent_id: strawberry.ID


async def _writable(info: Info, global_id: str) -> UUID:
    """Editors and admins may write any agent's session of their tenant, an agent token its
    own agent's only; viewers none."""
    principal = info.context.require_principal()
    pk = decode_id(global_id, "Agent")
    if principal.role is Role.AGENT:
        if principal.agent_id != pk:
            raise Forbidden("An agent token writes its own agent's session only")
    elif not principal.role.allows(Role.EDITOR):
        raise Forbidden("Writing a session needs the editor role or the agent's token")
    if await info.context.loaders.agent_by_id.load(pk) is None:
        raise NotFound("Agent not found", field="agentId")
    return pk


@strawberry.type
class SessionMutations:
    @strawberry.mutation(
        directives=[REDIS],
        description="Replace an agent's session state if it is still at the expected version.",
    )
    async def set_agent_session_state(
        self, info: Info, input: SetAgentSessionStateInput
    ) -> AgentSessionPayload | None:
        ctx = info.context
        pk = await _writable(info, input.agent_id)
        found = await set_state(
            ctx.stores.redis,
            ctx.require_principal().tenant_id,
            pk,
            input.state,
            input.expected_version,
            input.ttl_seconds,
            ctx.settings.store_timeout_seconds,
        )
        ctx.loaders.session_by_agent.clear(pk).prime(pk, found)
        return AgentSessionPayload(session=AgentSession.of(found))

    @strawberry.mutation(
        directives=[REDIS],
        description="Delete an agent's session state (nothing if there is none).",
    )
    async def clear_agent_session(
        self, info: Info, input: ClearAgentSessionInput
    ) -> ClearAgentSessionPayload | None:
        ctx = info.context
        pk = await _writable(info, input.agent_id)
        await clear_state(
            ctx.stores.redis,
            ctx.require_principal().tenant_id,
            pk,
            ctx.settings.store_timeout_seconds,
        )
        ctx.loaders.session_by_agent.clear(pk).prime(pk, None)
        return ClearAgentSessionPayload(agent_id=input.agent_id)
