"""Demand control: price every operation before it runs, refuse what is too dear, charge the
tenant's and the client's buckets, and say what it all cost.

Runs after authentication and validation, before any resolver: a refused operation
(COST_LIMIT, RATE_LIMITED, or STORE_UNAVAILABLE when the buckets cannot be reached and the
configuration says to fail closed) touches no store. The price comes from the cost tree of
the document (app/cost/model.py), compiled once per document and priced with each request's
variables; the actual cost is counted from the response afterwards, and the difference given
back to both buckets.

A subscription is charged its price when it starts; each event it delivers is charged what
that event's payload cost (app/ws_protocol.py), so a client's live updates and its queries
spend one budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLError
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult
from strawberry.types.graphql import OperationType

from app.cost.model import OperationCost, operation_cost
from app.errors import ChimeraError, CostLimit, RateLimited, StoreUnavailable, Unauthenticated
from app.extensions.refusals import refuse
from app.log_context import note_operation
from app.ratelimit.demand import Demand
from app.revocations import revoked_key
from app.stores.failures import is_store_failure

log = logging.getLogger("chimera.ratelimit")
LOG_EVERY_SECONDS = 10.0
# Set on an event's result that was refused: the transport sends it as the operation's
# final `error` rather than as a `next`.
ENDS_SUBSCRIPTION = "chimera_ends_subscription"


class Unmetered:
    """Operations served without a charge because the buckets could not be reached (the
    metric operators alert on), and those refused for it."""

    served = 0
    refused = 0
    _logged_at = 0.0

    @classmethod
    def note(cls, exc: BaseException, *, refused: bool) -> None:
        if refused:
            cls.refused += 1
        else:
            cls.served += 1
        now = time.monotonic()
        if now - cls._logged_at >= LOG_EVERY_SECONDS:
            cls._logged_at = now
            log.warning(
                "rate-limit buckets unreachable (%r): %d operations served unmetered, "
                "%d refused so far",
                exc,
                cls.served,
                cls.refused,
            )


async def key_revoked(context: Any, principal: Any) -> Unauthenticated | None:
    """UNAUTHENTICATED when ``principal`` stands for an API key revoked since it was
    verified (a live subscription outlives its request); the key cache's answer
    (app/api_keys.py), so no store call per event."""
    api_keys = getattr(context.stores, "api_keys", None)
    if api_keys is None:
        return None
    try:
        await api_keys.ensure_valid(principal)
    except Unauthenticated as revoked:
        return revoked
    return None


class DemandControl(SchemaExtension):
    demand: Demand | None = None
    cost: OperationCost | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        context = ctx.context
        principal = getattr(context, "principal", None)
        document = ctx.graphql_document
        if ctx.result is not None or principal is None or document is None:
            yield
            return
        cost = operation_cost(ctx.schema._schema, document, ctx.query or "", ctx.operation_name)
        if cost is None:
            yield
            return
        state = context.request.app.state
        demand = Demand(limits=state.tenants.limits(principal.tenant_id))
        demand.requested = cost.requested(ctx.variables)
        self.demand, self.cost = demand, cost
        if ctx.operation_type is not OperationType.SUBSCRIPTION:
            # For this operation's rateLimit field. (A WebSocket's context is shared by its
            # operations; its events are priced on their own, below.)
            context.demand = demand
        refusal = await self.admit(context, principal, demand, ctx.operation_type)
        response = context.response
        if isinstance(response, Response):
            response.headers.update(demand.headers())
            if isinstance(refusal, RateLimited):
                response.status_code = 429
        if refusal is not None:
            refuse(ctx, refusal)
            yield
            return
        yield
        if ctx.operation_type is OperationType.SUBSCRIPTION:
            return  # events are charged one by one as they are delivered
        result = ctx.result
        data = getattr(result, "data", None)
        demand.actual = cost.actual(data)
        note_operation(ctx.operation_name, demand.actual.total)
        spared = demand.requested.total - demand.actual.total
        if demand.charge is not None and demand.charge.allowed and spared > 0:
            buckets = context.stores.buckets
            buckets.refund_charge(principal.tenant_id, principal.client, demand.limits, spared)
            demand.refunded = spared
            if isinstance(response, Response):
                response.headers.update(demand.headers())

    async def admit(
        self, context: Any, principal: Any, demand: Demand, operation: OperationType
    ) -> ChimeraError | None:
        """The refusal this operation gets, if any, having charged it otherwise."""
        assert demand.requested is not None
        price = demand.requested.total
        maximum = demand.limits.operation_maximum
        if price > maximum:
            return CostLimit(
                f"This operation is priced at {price} points, more than the {maximum} one "
                "operation may cost; ask for fewer items (first, limit) or fewer fields",
                requested=price,
                maximum=maximum,
            )
        settings = context.settings
        buckets = context.stores.buckets
        if not settings.rate_limits or buckets is None:
            return None
        marker = (
            revoked_key(principal.tenant_id, principal.token_id)
            if principal.token_id is not None
            else None
        )
        try:
            demand.charge = await buckets.charge(
                principal.tenant_id, principal.client, demand.limits, price, marker
            )
        except Exception as exc:
            if not is_store_failure(exc):
                raise
            mode = settings.rate_limit_when_redis_down
            refuse = mode == "closed" or (
                mode == "open-reads" and operation is OperationType.MUTATION
            )
            Unmetered.note(exc, refused=refuse)
            if refuse:
                return StoreUnavailable("Redis", "rate limits cannot be checked")
            return None
        if demand.charge.revoked:
            return Unauthenticated("The bearer token has been revoked")
        if not demand.charge.allowed:
            retry_after = round(demand.charge.retry_after, 3)
            bucket = demand.charge.binding
            scope = bucket.scope.value.lower() if bucket is not None else "tenant"
            return RateLimited(
                f"Rate limited: the {scope}'s budget cannot pay the {price} points this "
                f"operation is priced at; retry after {retry_after:g} s",
                retryAfter=retry_after,
                requested=price,
            )
        return None

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:
        """Each event of a subscription: charged what its payload cost; refused, the
        subscription ends with RATE_LIMITED (the event withheld, so that the client,
        resuming with `after` once it may, misses nothing). Its credential is checked
        again first: a token revoked since (in the charge's own Redis call) or an API key
        revoked since (`key_revoked`) ends it with UNAUTHENTICATED."""
        ctx = self.execution_context
        cost, demand = self.cost, self.demand
        if (
            cost is None
            or demand is None
            or ctx.operation_type is not OperationType.SUBSCRIPTION
            or not isinstance(result, StrawberryExecutionResult)
            or result.data is None
        ):
            yield
            return
        principal = ctx.context.principal
        spent = cost.actual(result.data)
        event = Demand(limits=demand.limits, requested=spent, actual=spent)
        refusal = await key_revoked(ctx.context, principal) or await self.admit(
            ctx.context, principal, event, OperationType.SUBSCRIPTION
        )
        result.extensions = {**(result.extensions or {}), "cost": event.report()}
        if refusal is not None:
            result.data = None
            result.errors = [
                GraphQLError(refusal.message, extensions=refusal.extensions, original_error=refusal)
            ]
            setattr(result, ENDS_SUBSCRIPTION, True)
        yield

    def get_results(self) -> dict[str, Any]:
        demand = self.demand
        if demand is None or demand.requested is None:
            return {}
        return {"cost": demand.report()}
