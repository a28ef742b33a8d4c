"""The GraphQL executor: Strawberry's, with compiled plans for speed and shared executions
for subscribers.

- **Plans.** When the operation can be planned (app/execution/plan.py), its fields are
  executed by the runner (app/execution/runner.py) a whole list level at a time instead of
  one object at a time. The hook is graphql-core's ``execute_collected_root_fields``, so
  everything around it (Strawberry's extensions, variable coercion, root-field collection,
  the response with its errors) stays the stock code path. ``CHIMERA_FAST_EXECUTION=false``
  turns plans off.
- **Subscribers running the same operation share its execution** (app/execution/sharing.py).
- **Arguments that do not coerce are BAD_USER_INPUT** (app/execution/arguments.py), here
  as in the runner: graphql-core raises a bare GraphQLError, which would be masked as an
  INTERNAL_SERVER_ERROR.
- **No memory leak per event.** graphql-core (3.3) memoizes collected sub-fields on the
  executor, keyed by the identity of lists built afresh for each event, and each event's
  copy of the executor shares that memo: every event of a subscription left ~2 KB behind
  until the subscription ended. Each event's executor gets a memo of its own instead;
  nothing is lost, since no key of one event can ever be looked up by another.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable, Sequence
from inspect import isawaitable
from typing import Any, ClassVar

from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    is_object_type,
)
from graphql.execution.collect_fields import DeferUsage, FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.execution.arguments import argument_values, client_input_error
from app.execution.plan import Planner
from app.execution.runner import Run
from app.execution.sharing import reuse, sharing_key
from app.extensions.refusals import take_refusal

MEMO = "_relevant_sub_fields"


class ChimeraExecutionContext(StrawberryGraphQLCoreExecutionContext):
    planner: ClassVar[Planner | None] = None
    _sharing_key: Hashable | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core keeps bound methods of the executor on the executor: a reference
        # cycle that held every request's context, loaders and rows (3,000 objects for a
        # dashboard page) until a full garbage collection, which RSS showed as growth.
        # Through a weak reference, the request's objects go as soon as it ends.
        this = weakref.ref(self)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: _alive(this).gather_async_work(values),
            track=lambda values: _alive(this).track_async_work(values),
        )

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        """graphql-core's executor for an operation, or the early errors that refuse it: an
        extension's refusal of a subscription, which Strawberry would start anyway
        (app/extensions/refusals.py)."""
        refused = take_refusal()
        if refused is not None:
            return [refused]
        return super().build(*args, **kwargs)

    def execute_collected_root_fields(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: GroupedFieldSet,
        serially: bool,
        new_defer_usages: Sequence[DeferUsage],
    ) -> Any:
        plan = self.planner.plan_for(self) if self.planner is not None else None
        if plan is None or new_defer_usages or serially != plan.root.serial:
            return super().execute_collected_root_fields(
                root_type, root_value, grouped_field_set, serially, new_defer_usages
            )
        return Run(self, plan).execute(root_value)

    def handle_field_error(
        self,
        raw_error: Exception,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> None:
        """Stock execution coerces a field's arguments inside ``execute_field``, where no
        hook reaches; an error there is marked BAD_USER_INPUT here instead, as the runner
        marks it (``Run.raw_arguments``)."""
        if isinstance(raw_error, GraphQLError) and raw_error.path is None:
            raw_error = self._argument_error(raw_error, field_details_list, path)
        super().handle_field_error(raw_error, return_type, field_details_list, path)

    def _argument_error(
        self, error: GraphQLError, field_details_list: FieldDetailsList, path: Path
    ) -> GraphQLError:
        """``error`` marked as the client's if it is the field's arguments that do not
        coerce. Coercion is a function of the document and the variables, and runs before
        the resolver: if it fails now it failed then, and the resolver never ran. Only an
        error pays for the second coercion."""
        parent_type = self.schema.get_type(path.typename) if path.typename else None
        if not is_object_type(parent_type):
            return error
        details = field_details_list[0]
        field_def = self.schema.get_field(parent_type, details.node.name.value)
        if field_def is None:
            return error
        try:
            argument_values(
                field_def,
                details.node,
                self.variable_values,
                details.fragment_variable_values,
                self.hide_suggestions,
            )
        except GraphQLError:
            return client_input_error(error)
        return error

    def build_per_event_executor(self, payload: Any) -> Any:
        if self._sharing_key is None:  # once per subscription
            self._sharing_key = sharing_key(
                self.operation, self.fragments, self.variable_values.coerced, self.context_value
            )
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
            return reuse(shared[key])
        result = super().execute_operation(serially)
        if isawaitable(result):
            # A task of its own, so that the first subscriber leaving does not cancel the
            # execution the others are waiting for.
            result = asyncio.ensure_future(result)
            shared[key] = result
            return asyncio.shield(result)
        shared[key] = result
        return result


def _alive(ref: weakref.ref[ChimeraExecutionContext]) -> ChimeraExecutionContext:
    executor = ref()
    if executor is None:  # pragma: no cover - helpers are only used while it executes
        raise RuntimeError("the executor these helpers belong to is gone")
    return executor


def execution_context_class(fast: bool) -> type[ChimeraExecutionContext]:
    """The executor for one schema: with a plan cache of its own, or none (stock
    execution for every operation)."""
    return type(
        "ChimeraExecutionContext",
        (ChimeraExecutionContext,),
        {"planner": Planner() if fast else None},
    )
