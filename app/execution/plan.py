"""Operations compiled into plans: what to call for each field, decided once per document.

graphql-core decides, for every field of every object it completes, how to resolve it: it
looks the field up, builds a resolve-info, parses its arguments, calls Strawberry's wrapper,
which builds an ``Info`` and converts the arguments again, and then inspects the return type
to complete the value. For a page of 50 campaigns with their agents and media that is the
same decision taken thousands of times. A plan takes each decision once per (document,
operation), caches it, and leaves the runner (app/execution/runner.py) a tree of selections
where every field already knows its strategy, its Python callable and how its values
complete.

Whatever the plan cannot prove it executes exactly as graphql-core would (introspection,
@defer/@stream, custom directives, resolve middleware, error propagation turned off) yields
no plan, and the operation runs on the stock executor.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, cast

from graphql import (
    DirectiveNode,
    FieldNode,
    GraphQLAbstractType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    OperationDefinitionNode,
    TypeNameMetaFieldDef,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    visit,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    collect_fields,
    collect_subfields,
)
from graphql.language import Visitor
from strawberry.types.field import StrawberryField

from app.execution.leaves import Leaf, leaf_for
from resolvers.batching import BATCH
from resolvers.columns import COLUMN

if TYPE_CHECKING:
    from app.execution.context import ChimeraExecutionContext

PLANS_KEPT = 256
STRAWBERRY_FIELD = "strawberry-definition"
DIRECTIVES_PLANNED = frozenset({"skip", "include"})


class Strategy(IntEnum):
    TYPENAME = 0  # __typename
    ATTRIBUTE = 1  # a plain Strawberry field: the source's attribute
    DIRECT = 2  # a Strawberry resolver without extensions: called per object
    BATCH = 3  # a resolver with a batch form (resolvers/batching.py): called per level
    STOCK = 4  # anything else: graphql-core's own resolve function, per object
    COLUMN = 5  # a column of the row the object wraps (resolvers/columns.py)


@dataclass(eq=False)
class Shape:
    """How a resolved value completes, for one output type."""

    nullable: bool


@dataclass(eq=False)
class LeafShape(Shape):
    leaf: Leaf


@dataclass(eq=False)
class ObjectShape(Shape):
    gtype: GraphQLObjectType
    details: FieldDetailsList
    # The Python class Strawberry built this type from: a value of exactly this class needs
    # no is_type_of check.
    cls: type | None
    plan: ObjectPlan | None = None


@dataclass(eq=False)
class AbstractShape(Shape):
    gtype: GraphQLAbstractType
    details: FieldDetailsList
    by_type: dict[str, ObjectShape] = field(default_factory=dict)


@dataclass(eq=False)
class ListShape(Shape):
    item: Shape


@dataclass(eq=False)
class FieldPlan:
    key: str
    name: str
    parent_type: GraphQLObjectType
    field_def: GraphQLField
    details: FieldDetailsList
    nodes: list[FieldNode]
    strategy: Strategy
    shape: Shape
    sfield: StrawberryField | None = None
    attr: str = ""
    # DIRECT: the resolver function; BATCH: the batch function.
    call: Callable[..., Any] | None = None
    takes_self: bool = False
    source_name: str | None = None  # a resolver's ``root``/``parent`` parameter
    is_async: bool = False
    has_args: bool = False
    # COLUMN: the column, its conversion, and for an enum converted from its stored value,
    # stored value -> GraphQL name.
    column: str = ""
    convert: Callable[[Any], Any] | None = None
    names: dict[Any, str] | None = None
    fused: bool = False  # a leaf column the runner reads and completes in one pass

    @property
    def getter(self) -> Callable[[Any], Any]:
        return operator.attrgetter(self.attr)


@dataclass(eq=False)
class ObjectPlan:
    gtype: GraphQLObjectType
    fields: list[FieldPlan]
    serial: bool = False


@dataclass(eq=False)
class OperationPlan:
    root: ObjectPlan


class Unplannable(Exception):
    """The operation uses something the runner does not execute; the stock executor will."""


class Planner:
    """Plans per operation, kept for the most recently used ``PLANS_KEPT`` operations.

    The key is the operation node (kept alive by the entry, so its id cannot be reused)
    and the values of the variables that decide @skip/@include, the only way variables
    change which fields are selected.
    """

    def __init__(self) -> None:
        self._plans: OrderedDict[Hashable, tuple[OperationDefinitionNode, OperationPlan | None]]
        self._plans = OrderedDict()
        self._switches: dict[int, tuple[OperationDefinitionNode, tuple[str, ...] | None]] = {}

    def plan_for(self, ctx: ChimeraExecutionContext) -> OperationPlan | None:
        operation = ctx.operation
        switches = self._switch_variables(ctx)
        if switches is None:
            return None
        coerced = ctx.variable_values.coerced
        key = (id(operation), tuple(coerced.get(name) for name in switches))
        entry = self._plans.get(key)
        if entry is not None and entry[0] is operation:
            self._plans.move_to_end(key)
            return entry[1]
        try:
            plan: OperationPlan | None = compile_operation(ctx)
        except Unplannable:
            plan = None
        self._plans[key] = (operation, plan)
        if len(self._plans) > PLANS_KEPT:
            self._plans.popitem(last=False)
        return plan

    def _switch_variables(self, ctx: ChimeraExecutionContext) -> tuple[str, ...] | None:
        """Names of the variables @skip/@include read, or None when the document uses a
        directive (or fragment arguments) the planner does not handle."""
        operation = ctx.operation
        known = self._switches.get(id(operation))
        if known is not None and known[0] is operation:
            return known[1]
        names = _switches_of(ctx)
        if len(self._switches) > PLANS_KEPT:
            self._switches.clear()
        self._switches[id(operation)] = (operation, names)
        return names


def _switches_of(ctx: ChimeraExecutionContext) -> tuple[str, ...] | None:
    if any(details.variable_signatures for details in ctx.fragments.values()):
        return None
    names: set[str] = set()
    unsupported = False

    class Directives(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            nonlocal unsupported
            if node.name.value not in DIRECTIVES_PLANNED:
                unsupported = True
                return
            for argument in node.arguments or ():
                for variable in _variables(argument.value):
                    names.add(variable)

    for node in (ctx.operation, *(d.definition for d in ctx.fragments.values())):
        visit(node, Directives())
    return None if unsupported else tuple(sorted(names))


def _variables(value: Any) -> list[str]:
    kind = getattr(value, "kind", "")
    if kind == "variable":
        return [value.name.value]
    return []


def compile_operation(ctx: ChimeraExecutionContext) -> OperationPlan:
    if ctx.middleware_manager is not None and ctx.middleware_manager.middlewares:
        raise Unplannable("resolve middleware")
    if ctx.abort_signal is not None or ctx.hooks is not None or not ctx.error_propagation:
        raise Unplannable("abort signal, hooks or error propagation off")
    root_type = ctx.schema.get_root_type(ctx.operation.operation)
    if root_type is None:
        raise Unplannable("no root type")
    grouped, defers, _forbidden = collect_fields(
        ctx.schema,
        ctx.fragments,
        ctx.variable_values,
        root_type,
        ctx.operation,
        ctx.hide_suggestions,
    )
    if defers:
        raise Unplannable("@defer")
    compiler = _Compiler(ctx)
    fields = [
        compiler.field(root_type, key, details, root=True) for key, details in grouped.items()
    ]
    serial = ctx.operation.operation.value == "mutation"
    return OperationPlan(ObjectPlan(root_type, [f for f in fields if f is not None], serial))


class _Compiler:
    def __init__(self, ctx: ChimeraExecutionContext) -> None:
        self.ctx = ctx
        strawberry_schema = ctx.schema._strawberry_schema  # type: ignore[attr-defined]
        converter = strawberry_schema.schema_converter
        if converter.exception_handlers:
            raise Unplannable("exception handlers")
        self.default_resolver = strawberry_schema.config.default_resolver

    def object_plan(self, shape: ObjectShape) -> ObjectPlan:
        if shape.plan is None:
            grouped, defers, _forbidden = collect_subfields(
                self.ctx.schema,
                self.ctx.fragments,
                self.ctx.variable_values,
                self.ctx.operation,
                shape.gtype,
                shape.details,
                self.ctx.hide_suggestions,
            )
            if defers:
                raise Unplannable("@defer")
            fields = [self.field(shape.gtype, key, details) for key, details in grouped.items()]
            shape.plan = ObjectPlan(shape.gtype, [f for f in fields if f is not None])
        return shape.plan

    def field(
        self,
        parent_type: GraphQLObjectType,
        key: str,
        details: FieldDetailsList,
        *,
        root: bool = False,
    ) -> FieldPlan | None:
        node = details[0].node
        name = node.name.value
        nodes = [d.node for d in details]
        if name == "__typename":
            return FieldPlan(
                key,
                name,
                parent_type,
                TypeNameMetaFieldDef,
                details,
                nodes,
                Strategy.TYPENAME,
                Shape(False),
            )
        if name.startswith("__"):
            raise Unplannable("introspection")
        field_def = self.ctx.schema.get_field(parent_type, name)
        if field_def is None:
            return None  # graphql-core skips unknown fields too (validation rejects them)
        shape = self.shape(field_def.type, details)
        plan = FieldPlan(
            key,
            name,
            parent_type,
            field_def,
            details,
            nodes,
            Strategy.STOCK,
            shape,
            has_args=bool(field_def.args or node.arguments),
        )
        extensions: dict[str, Any] = dict(field_def.extensions)
        sfield = extensions.get(STRAWBERRY_FIELD)
        if root or not isinstance(sfield, StrawberryField) or sfield.extensions:
            return plan
        plan.sfield = sfield
        metadata: dict[str, Any] = dict(sfield.metadata or {})
        batch = metadata.get(BATCH)
        resolver = sfield.base_resolver
        column = metadata.get(COLUMN)
        if batch is not None and resolver is not None:
            plan.strategy, plan.call = Strategy.BATCH, batch
        elif column is not None and resolver is not None:
            plan.strategy = Strategy.COLUMN
            plan.column, plan.convert = column
            plan.names = _stored_names(plan.convert, shape)
            plan.fused = plan.names is None and isinstance(shape, LeafShape)
        elif resolver is None:
            if self.default_resolver is not getattr:
                return plan
            plan.strategy, plan.attr = Strategy.ATTRIBUTE, sfield.python_name
        else:
            source = resolver.root_parameter or resolver.parent_parameter
            plan.strategy, plan.call = (
                Strategy.DIRECT,
                cast(Callable[..., Any], resolver.wrapped_func),
            )
            plan.takes_self = resolver.self_parameter is not None
            plan.source_name = source.name if source is not None else None
            plan.is_async = sfield.is_async
        return plan

    def shape(self, gtype: GraphQLOutputType, details: FieldDetailsList) -> Shape:
        nullable = True
        if is_non_null_type(gtype):
            nullable = False
            assert isinstance(gtype, GraphQLNonNull)
            gtype = gtype.of_type
        if is_list_type(gtype):
            assert isinstance(gtype, GraphQLList)
            return ListShape(nullable, self.shape(gtype.of_type, details))
        if is_leaf_type(gtype):
            return LeafShape(nullable, leaf_for(gtype))
        if is_abstract_type(gtype):
            return AbstractShape(nullable, gtype, details)
        if is_object_type(gtype):
            assert isinstance(gtype, GraphQLObjectType)
            shape = ObjectShape(nullable, gtype, details, _origin(gtype))
            self.object_plan(shape)
            return shape
        raise Unplannable(f"output type {gtype}")


def _stored_names(convert: Any, shape: Shape) -> dict[Any, str] | None:
    """For a column converted by an Enum class into that enum's GraphQL type: stored
    value -> GraphQL name, the two steps in one lookup."""
    if not isinstance(shape, LeafShape) or shape.leaf.cls is None:
        return None
    if convert is not shape.leaf.cls or not shape.leaf.names:
        return None
    return {member.value: name for member, name in shape.leaf.names.items()}


def _origin(gtype: GraphQLObjectType) -> type | None:
    """The class whose instances Strawberry's own checks accept as this type without a
    look at the instance: the type's class, or for a specialised generic (``Edge[Agent]``)
    the generic class its resolvers instantiate."""
    extensions: dict[str, Any] = dict(gtype.extensions)
    definition = extensions.get(STRAWBERRY_FIELD)
    generic = getattr(definition, "concrete_of", None)
    origin = getattr(generic or definition, "origin", None)
    return origin if isinstance(origin, type) else None


def object_shape_for(
    ctx: ChimeraExecutionContext, shape: AbstractShape, runtime: GraphQLObjectType
) -> ObjectShape:
    """The object shape of one concrete type of an abstract field, made on first use."""
    found = shape.by_type.get(runtime.name)
    if found is None:
        found = ObjectShape(shape.nullable, runtime, shape.details, _origin(runtime))
        shape.by_type[runtime.name] = found
    return found


def plan_object(ctx: ChimeraExecutionContext, shape: ObjectShape) -> ObjectPlan:
    if shape.plan is None:
        _Compiler(ctx).object_plan(shape)
    assert shape.plan is not None
    return shape.plan
