"""Schema assembly: the domain query and mutation types merged, with the operation guards.

``build_schema`` is called by the composition root with settings, never at import time, so
production and dev differ only in configuration (introspection, suggestions, the IDE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from opentelemetry.trace import TracerProvider
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app.error_logging import log_errors
from app.execution import execution_context_class
from app.extensions.agent_scope import AgentScope
from app.extensions.authentication import RequireAuthentication
from app.extensions.demand_control import DemandControl
from app.extensions.error_codes import ErrorCodes, MaskInternalErrors
from app.extensions.operation_metrics import OperationMetrics
from app.extensions.operation_tracing import OperationTracing
from app.extensions.query_plan import QueryPlan
from app.extensions.read_routing import ReadRouting
from app.extensions.websocket_subscriptions import SubscriptionsOverWebSocket
from app.scalars import SCALAR_OVERRIDES
from app.settings import Settings
from app.telemetry.metrics import Metrics
from resolvers.agents.mutations import AgentMutations
from resolvers.agents.queries import AgentQueries
from resolvers.apikeys.mutations import ApiKeyMutations
from resolvers.apikeys.queries import ApiKeyQueries
from resolvers.audit.queries import AuditQueries
from resolvers.campaigns.mutations import CampaignMutations
from resolvers.campaigns.queries import CampaignQueries
from resolvers.engagement.mutations import EngagementMutations
from resolvers.events.subscriptions import EventSubscriptions
from resolvers.ledger.mutations import LedgerMutations
from resolvers.limits.queries import LimitQueries
from resolvers.media.mutations import MediaMutations
from resolvers.memories.mutations import MemoryMutations
from resolvers.nodes import NodeQueries
from resolvers.search.queries import SearchQueries
from resolvers.sessions.mutations import SessionMutations
from resolvers.tasks.mutations import TaskMutations
from resolvers.tasks.queries import TaskQueries
from resolvers.tasks.runtime import RuntimeMutations
from resolvers.tenants.queries import TenantQueries

Query = merge_types(
    "Query",
    (
        NodeQueries,
        TenantQueries,
        AgentQueries,
        CampaignQueries,
        SearchQueries,
        AuditQueries,
        TaskQueries,
        LimitQueries,
        ApiKeyQueries,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AgentMutations,
        CampaignMutations,
        EngagementMutations,
        LedgerMutations,
        MediaMutations,
        MemoryMutations,
        TaskMutations,
        RuntimeMutations,
        SessionMutations,
        ApiKeyMutations,
    ),
)


Subscription = merge_types("Subscription", (EventSubscriptions,))


class ChimeraSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors)


def build_schema(
    settings: Settings,
    tracer_provider: TracerProvider | None = None,
    metrics: Metrics | None = None,
) -> strawberry.Schema:
    """The schema; with ``tracer_provider``, each operation is traced into it, and with
    ``metrics``, timed and counted. With ``settings.federation``, the same schema as a
    federation subgraph (app/federation.py)."""
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        lambda: ErrorCodes(hide_suggestions=settings.is_production),
        MaskInternalErrors,
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        _limit_rules(settings),
        RequireAuthentication,
        AgentScope,
        DemandControl,
        QueryPlan,
        SubscriptionsOverWebSocket,
    ]
    if settings.read_urls:
        extensions.insert(extensions.index(DemandControl) + 1, ReadRouting)
    if metrics is not None:
        extensions.insert(0, lambda: OperationMetrics(metrics=metrics))
    if tracer_provider is not None:
        # First: its operation span then encloses every other extension's work.
        tracer = tracer_provider.get_tracer("chimera.graphql")
        extensions.insert(0, lambda: OperationTracing(tracer=tracer))
    parts: dict[str, Any] = {
        "mutation": Mutation,
        "subscription": Subscription,
        "extensions": extensions,
        "config": StrawberryConfig(disable_field_suggestions=settings.is_production),
        "scalar_overrides": SCALAR_OVERRIDES,
        "execution_context_class": execution_context_class(settings.fast_execution),
    }
    if settings.federation:
        from app.federation import FederatedSchema

        return FederatedSchema(query=Query, **parts)
    return ChimeraSchema(query=Query, **parts)


def _limit_rules(settings: Settings) -> Callable[[], SchemaExtension]:
    """The depth and alias limits (and, in production, no introspection) as rule classes
    built once. The validation cache keys on the rule classes: Strawberry's limiters build a
    new class per request, so every request missed it and paid ~3 ms of validation again."""
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    if settings.is_production:
        rules.append(NoSchemaIntrospectionCustomRule)
    return lambda: AddValidationRules(rules)


def schema_sdl(*, federation: bool = False) -> str:
    """The SDL clients see (or, with ``federation``, the SDL a gateway composes: the same
    with @key, _service and _entities); the same in every environment."""
    schema = build_schema(Settings(federation=federation))
    return schema.as_str() if federation else schema.as_str() + "\n"
