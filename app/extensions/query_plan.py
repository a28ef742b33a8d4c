"""``extensions.plan``: the store calls a request made, for a request that asked for them
(loaders/plan.py records them, app/graphql_view.py decides who may ask)."""

from __future__ import annotations

from typing import Any

from strawberry.extensions import SchemaExtension


class QueryPlan(SchemaExtension):
    def get_results(self) -> dict[str, Any]:
        plan = getattr(self.execution_context.context, "plan", None)
        return {} if plan is None else {"plan": plan.as_json()}
