"""Mutation.revokeApiKey (admins): the key stops working, its row and history stay."""

from __future__ import annotations

import strawberry

from app.api_keys import revoke_api_key
from app.cost.directives import POSTGRES
from app.ids import decode_id
from resolvers.apikeys.queries import require_admin
from resolvers.apikeys.types import ApiKey, RevokeApiKeyInput, RevokeApiKeyPayload
from resolvers.info import Info


@strawberry.type
class ApiKeyMutations:
    @strawberry.mutation(
        description="Stop an API key from working: at once on this instance, within seconds "
        "on every other. Revoking a revoked key changes nothing.",
        directives=[POSTGRES],
    )
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> RevokeApiKeyPayload:
        require_admin(info, "Revoking an API key")
        context = info.context
        row = await revoke_api_key(
            context.stores.engine,
            context.require_principal(),
            decode_id(input.id, "ApiKey"),
        )
        if context.stores.api_keys is not None:
            context.stores.api_keys.forget(row.prefix)
        return RevokeApiKeyPayload(api_key=ApiKey.from_row(row))
