"""The GraphQL executor: Strawberry's, minus a memory leak of long-lived subscriptions.

graphql-core (3.3) memoizes collected sub-fields on the executor, keyed by the identity of
lists that are built afresh for each event; each event's copy of the executor shares that
memo, so every event of a subscription left ~2 KB behind until the subscription ended. A
dashboard open for a day on a busy tenant would hold hundreds of megabytes. Each event's
executor now gets a memo of its own, freed with it; nothing is lost, since no key of one
event can ever be looked up by another.
"""

from __future__ import annotations

from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

MEMO = "_relevant_sub_fields"


class ChimeraExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def build_per_event_executor(self, payload: Any) -> Any:
        executor = super().build_per_event_executor(payload)
        if hasattr(executor, MEMO):
            setattr(executor, MEMO, {})
        return executor
