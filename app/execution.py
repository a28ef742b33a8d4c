"""The GraphQL executor: Strawberry's, made to scale with the number of subscribers.

Two changes, both for live events:

- **Subscribers running the same operation share its execution.** graphql-core executes a
  subscription's selection once per subscriber per event: a thousand dashboards cost a
  thousand executions of the same selection on the same event, and that, not the stores, was
  what saturated the app in the subscription benchmark. An event's payload object is shared
  by the tenant's subscribers (app/events/hub.py `Batch`), and it carries a dict of results;
  the first subscriber to execute an operation stores the result there, the others reuse
  it. The key holds everything the result can depend on: the operation's text (with its
  fragments), the values of the variables used below the root field (not `after` or
  `campaignId`, which only choose events), and the caller's tenant and role.
- **No memory leak per event.** graphql-core (3.3) memoizes collected sub-fields on the
  executor, keyed by the identity of lists built afresh for each event, and each event's
  copy of the executor shares that memo: every event of a subscription left ~2 KB behind
  until the subscription ended. Each event's executor gets a memo of its own instead;
  nothing is lost, since no key of one event can ever be looked up by another.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from inspect import isawaitable
from typing import Any

from graphql import FieldNode, Node, VariableNode, print_ast, visit
from graphql.language import Visitor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

MEMO = "_relevant_sub_fields"


class ChimeraExecutionContext(StrawberryGraphQLCoreExecutionContext):
    _sharing_key: Hashable | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        if self._sharing_key is None:
            self._sharing_key = self._compute_sharing_key()  # once per subscription
        executor = super().build_per_event_executor(payload)
        if hasattr(executor, MEMO):
            setattr(executor, MEMO, {})
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        shared: dict[Hashable, Any] | None = getattr(self.root_value, "shared_results", None)
        key = self._sharing_key
        if shared is None or key is None:
            return super().execute_operation(serially)
        if key in shared:
            return _reuse(shared[key])
        result = super().execute_operation(serially)
        if isawaitable(result):
            # A task of its own, so that the first subscriber leaving does not cancel the
            # execution the others are waiting for.
            result = asyncio.ensure_future(result)
            shared[key] = result
            return asyncio.shield(result)
        shared[key] = result
        return result

    def _compute_sharing_key(self) -> Hashable:
        fragments = [details.definition for _, details in sorted(self.fragments.items())]
        root = self.operation.selection_set.selections[0]
        below_root: list[Node] = list(fragments)
        if isinstance(root, FieldNode):
            below_root += list(root.directives or ())
            if root.selection_set is not None:
                below_root.append(root.selection_set)
        else:  # a fragment at the root: every variable may matter
            below_root.append(self.operation)
        used = sorted({name for node in below_root for name in _variables_in(node)})
        coerced = self.variable_values.coerced
        values = json.dumps({name: coerced.get(name) for name in used}, sort_keys=True, default=str)
        principal = getattr(self.context_value, "principal", None)
        who = (principal.tenant_id, principal.role) if principal is not None else None
        text = "".join(print_ast(node) for node in (self.operation, *fragments))
        return (text, values, who)


def _reuse(cached: Any) -> Any:
    return asyncio.shield(cached) if isinstance(cached, asyncio.Future) else cached


def _variables_in(node: Node) -> set[str]:
    names: set[str] = set()

    class Collect(Visitor):
        def enter_variable(self, variable: VariableNode, *_: Any) -> None:
            names.add(variable.name.value)

    visit(node, Collect())
    return names
