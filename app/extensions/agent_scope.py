"""An agent runtime's token reaches its own agent's work and nothing else.

Reads need no role in Chimera (every role of a tenant reads the tenant), so a runtime's
token, which a compromised agent could misuse, is held to a list of the fields it may
select: the task calls, its agent's tasks and session, the little of a campaign a task needs.
Anything else in the operation refuses the whole operation with FORBIDDEN before a store is
touched. That its agent is the one named (in `agent(id)`, `task(id)`, a lease or a session)
is checked where those are resolved. Other roles pay nothing here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    visit,
)
from strawberry.extensions import SchemaExtension

from app.auth import Role
from app.errors import Forbidden
from app.extensions.refusals import refuse

ANY = frozenset({"*"})
# Type name -> the fields an agent token may select on it.
ALLOWED: dict[str, frozenset[str]] = {
    "Query": frozenset({"viewer", "task", "agent"}),
    "Mutation": frozenset(
        {
            "claimTasks",
            "heartbeatTask",
            "completeTask",
            "failTask",
            "setAgentSessionState",
            "clearAgentSession",
        }
    ),
    "Subscription": frozenset({"agentEvents"}),
    "Viewer": frozenset({"role", "subject"}),
    "Agent": frozenset(
        {"id", "name", "persona", "status", "tasks", "activeTasks", "queuedTasks", "session"}
    ),
    "Campaign": frozenset({"id", "name", "goal", "status"}),
    "Task": ANY,
    "TaskLease": ANY,
    "TaskConnection": ANY,
    "TaskEdge": ANY,
    "PageInfo": ANY,
    "ClaimTasksPayload": ANY,
    "TaskPayload": ANY,
    "AgentSession": ANY,
    "AgentSessionPayload": ANY,
    "ClearAgentSessionPayload": ANY,
    "AgentEvent": ANY,
}
KEPT = 256


def refused_fields(schema: GraphQLSchema, document: DocumentNode) -> list[str]:
    """``Type.field`` of every selection an agent token may not make, in document order."""
    info = TypeInfo(schema)
    refused: list[str] = []

    class Check(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            name = node.name.value
            parent = info.get_parent_type()
            if parent is None or name.startswith("__"):
                return
            type_name = get_named_type(parent).name
            allowed = ALLOWED.get(type_name, frozenset())
            if allowed is not ANY and name not in allowed:
                refused.append(f"{type_name}.{name}")

    visit(document, TypeInfoVisitor(info, Check()))
    return refused


_checked: OrderedDict[tuple[int, str], list[str]] = OrderedDict()


class AgentScope(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        principal = getattr(ctx.context, "principal", None)
        document = ctx.graphql_document
        if principal is None or principal.role is not Role.AGENT or document is None:
            yield
            return
        key = (id(ctx.schema), ctx.query or "")
        refused = _checked.get(key)
        if refused is None:
            refused = refused_fields(ctx.schema._schema, document)
            _checked[key] = refused
            if len(_checked) > KEPT:
                _checked.popitem(last=False)
        if refused:
            error = Forbidden(
                "An agent token may only work its own agent's tasks and session; not "
                + ", ".join(dict.fromkeys(refused)),
            )
            refuse(ctx, error)
        yield
