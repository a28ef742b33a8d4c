"""Subscribers running the same operation on the same event share one execution.

graphql-core executes a subscription's selection once per subscriber per event: a thousand
dashboards cost a thousand executions of the same selection on the same event, and that,
not the stores, was what saturated the app in the subscription benchmark. An event's
payload object is shared by the tenant's subscribers (app/events/hub.py ``Batch``), and it
carries a dict of results; the first subscriber to execute an operation stores the result
there, the others reuse it. The key holds everything the result can depend on: the
operation's text (with its fragments), the values of the variables used below the root
field (not ``after`` or ``campaignId``, which only choose events), and the caller's tenant
and role.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from typing import Any

from graphql import FieldNode, Node, OperationDefinitionNode, VariableNode, print_ast, visit
from graphql.execution.collect_fields import FragmentDetails
from graphql.language import Visitor


def sharing_key(
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDetails],
    coerced: dict[str, Any],
    context: Any,
) -> Hashable:
    definitions = [details.definition for _, details in sorted(fragments.items())]
    root = operation.selection_set.selections[0]
    below_root: list[Node] = list(definitions)
    if isinstance(root, FieldNode):
        below_root += list(root.directives or ())
        if root.selection_set is not None:
            below_root.append(root.selection_set)
    else:  # a fragment at the root: every variable may matter
        below_root.append(operation)
    used = sorted({name for node in below_root for name in _variables_in(node)})
    values = json.dumps({name: coerced.get(name) for name in used}, sort_keys=True, default=str)
    principal = getattr(context, "principal", None)
    who = (principal.tenant_id, principal.role) if principal is not None else None
    text = "".join(print_ast(node) for node in (operation, *definitions))
    return (text, values, who)


def reuse(cached: Any) -> Any:
    return asyncio.shield(cached) if isinstance(cached, asyncio.Future) else cached


def _variables_in(node: Node) -> set[str]:
    names: set[str] = set()

    class Collect(Visitor):
        def enter_variable(self, variable: VariableNode, *_: Any) -> None:
            names.add(variable.name.value)

    visit(node, Collect())
    return names
