"""An operation's cost: compiled once per document, priced per request, recounted afterwards.

The rules are Apollo Router's demand control (IBM's cost specification): an object costs 1,
a scalar 0, unless ``@cost`` says otherwise; a mutation field costs 10; a list multiplies
what each of its elements costs, its size taken from a slicing argument (``first``,
``limit``), capped by ``assumedSize`` where the field declares one, the argument's default
where none is given. Two additions make the price say where it is paid. Every point lands
on a store: the nearest ``@store`` of the field, of its type, or of the field above it. And
``@store(call:)`` prices the store call a field makes each time it is resolved (a vector
search per campaign), which no per-element weight can express.

The *requested* cost is computed from the document and the variables before anything is
executed; it is an upper bound, since pages may come back short. The *actual* cost walks
the response with the same tree and counts what really came back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    is_list_type,
    value_from_ast_untyped,
)

from app.cost.directives import SIZE_FROM, Cost, CostStore, ListSize, SizeFunction, Store

STORES: tuple[str, ...] = tuple(store.value for store in CostStore)
STORE_INDEX = {name: i for i, name in enumerate(STORES)}
COMPUTE = STORE_INDEX[CostStore.COMPUTE.value]
MUTATION_WEIGHT = 10
DEFAULT_LIST_SIZE = 100  # a list with no @listSize: the largest page any field serves
DEFINITION = "strawberry-definition"
SELF = ""  # a node that prices the object it sits in (an abstract field's element, by type)
KEPT = 256


def _directive(definition: object, cls: type) -> Any:
    for directive in getattr(definition, "directives", None) or ():
        if isinstance(directive, cls):
            return directive
    return None


@dataclass(frozen=True, slots=True)
class Size:
    """How many elements: the largest of the slicing arguments given (a literal, or a
    variable read per request), else ``default``; never more than ``cap``. A field whose
    size follows from its arguments in a way no slicing argument says (a time range cut
    into buckets) names a function of them (``size_from``); its @listSize is the cap."""

    literals: tuple[int, ...] = ()
    # A variable, and the path inside its value ("input.max" with $input: the path "max").
    variables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    default: int = DEFAULT_LIST_SIZE
    cap: int | None = None
    computed: SizeFunction | None = None
    arguments: tuple[tuple[str, bool, Any], ...] = ()  # (name, is a variable, literal or name)

    def value(self, variables: Mapping[str, Any]) -> int:
        found = list(self.literals)
        for name, path in self.variables:
            value = variables.get(name)
            for step in path:
                value = value.get(step) if isinstance(value, dict) else None
            given = _count(value)
            if given is not None:
                found.append(given)
        if self.computed is not None:
            values = {
                name: variables.get(value) if is_variable else value
                for name, is_variable, value in self.arguments
            }
            try:
                computed = self.computed(values)
            except (TypeError, ValueError, OverflowError):
                computed = None  # the field will refuse such arguments itself
            if computed is not None:
                found.append(computed)
        size = max(found) if found else self.default
        if self.cap is not None:
            size = min(size, self.cap)
        return max(size, 0)


def _count(value: object) -> int | None:
    """A slicing argument's value as a number of elements: an int, or a list's length."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list):
        return len(value)
    return None


@dataclass(slots=True)
class Node:
    """One response key of a selection, with what its elements and calls cost."""

    key: str
    weight: int  # per element
    store: int  # where the elements' cost lands
    call: int = 0  # per resolution
    call_store: int = COMPUTE
    given_args: list[tuple[int, int]] = field(default_factory=list)  # (weight, store)
    variable_args: list[tuple[str, int, int]] = field(default_factory=list)
    size: Size | None = None  # set for a list
    children: list[Node] = field(default_factory=list)
    # An abstract type: each possible type's selection; an element costs the dearest.
    by_type: dict[str, list[Node]] | None = None
    skip_if: list[tuple[str, bool]] = field(default_factory=list)  # (variable, skip when)


@dataclass(frozen=True, slots=True)
class Price:
    """Points in all, and per store (indexed like STORES)."""

    total: int
    by_store: tuple[int, ...]

    def as_dict(self) -> dict[str, int]:
        return {name: points for name, points in zip(STORES, self.by_store, strict=True) if points}


def _price(acc: list[float]) -> Price:
    by_store = tuple(round(points) for points in acc)
    return Price(total=sum(by_store), by_store=by_store)


@dataclass(slots=True)
class OperationCost:
    nodes: list[Node]

    def requested(self, variables: Mapping[str, Any] | None) -> Price:
        acc = [0.0] * len(STORES)
        _request(self.nodes, variables or {}, 1.0, acc)
        return _price(acc)

    def actual(self, data: Mapping[str, Any] | None) -> Price:
        acc = [0.0] * len(STORES)
        if data:
            _actual(self.nodes, [data], acc)
        return _price(acc)


def _skipped(node: Node, variables: Mapping[str, Any]) -> bool:
    return any(variables.get(name) is skip for name, skip in node.skip_if)


def _request(
    nodes: list[Node], variables: Mapping[str, Any], times: float, acc: list[float]
) -> None:
    for node in nodes:
        if node.skip_if and _skipped(node, variables):
            continue
        count = node.size.value(variables) if node.size is not None else 1
        acc[node.store] += times * count * node.weight
        acc[node.call_store] += times * node.call
        for weight, store in node.given_args:
            acc[store] += times * weight
        for name, weight, store in node.variable_args:
            if variables.get(name) is not None:
                acc[store] += times * weight
        inner = times * count
        if node.children:
            _request(node.children, variables, inner, acc)
        if node.by_type:
            dearest: list[float] | None = None
            for selection in node.by_type.values():
                trial = [0.0] * len(STORES)
                _request(selection, variables, inner, trial)
                if dearest is None or sum(trial) > sum(dearest):
                    dearest = trial
            for i, points in enumerate(dearest or ()):
                acc[i] += points


_ABSENT = object()


def _elements(value: Any, out: list[Any]) -> int:
    """Non-null elements of a (possibly nested) list value, objects appended to ``out``."""
    if value is None:
        return 0
    if isinstance(value, list):
        return sum(_elements(item, out) for item in value)
    if isinstance(value, dict):
        out.append(value)
    return 1


def _actual(nodes: list[Node], parents: Sequence[Mapping[str, Any]], acc: list[float]) -> None:
    for node in nodes:
        key = node.key
        objects: list[Any] = []
        resolved = 0
        count = 0
        if key is SELF:
            resolved = count = len(parents)
        else:
            # The common shapes inline (a dashboard's walk visits some 2,000 values): a
            # value, an object, a list of objects or values; deeper lists recurse.
            for parent in parents:
                value = parent.get(key, _ABSENT)
                if value is _ABSENT:
                    continue
                resolved += 1
                if value is None:
                    continue
                kind = value.__class__
                if kind is dict:
                    count += 1
                    objects.append(value)
                elif kind is list:
                    for item in value:
                        if item is None:
                            continue
                        if item.__class__ is dict:
                            count += 1
                            objects.append(item)
                        else:
                            count += _elements(item, objects)
                else:
                    count += 1
        if not resolved:
            continue
        acc[node.store] += count * node.weight
        acc[node.call_store] += resolved * node.call
        for weight, store in node.given_args:
            acc[store] += resolved * weight
        # A variable argument's presence was priced before execution; afterwards the
        # variables are not at hand, and the requested price already counted it.
        for _name, weight, store in node.variable_args:
            acc[store] += resolved * weight
        if not objects:
            continue
        if node.children:
            _actual(node.children, objects, acc)
        if node.by_type:
            for obj in objects:
                dearest: list[float] | None = None
                for selection in node.by_type.values():
                    trial = [0.0] * len(STORES)
                    _actual(selection, [obj], trial)
                    if dearest is None or sum(trial) > sum(dearest):
                        dearest = trial
                for i, points in enumerate(dearest or ()):
                    acc[i] += points


class Compiler:
    """Turns one operation of a document into its cost tree, against one schema."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def operation(self, operation: OperationDefinitionNode) -> OperationCost:
        root = self.schema.get_root_type(operation.operation)
        assert root is not None
        mutation = operation.operation is OperationType.MUTATION
        return OperationCost(self.selection(root, [operation.selection_set], COMPUTE, mutation))

    def selection(
        self,
        parent: GraphQLObjectType | GraphQLInterfaceType,
        sets: Sequence[SelectionSetNode],
        store: int,
        mutation: bool = False,
        sized: tuple[frozenset[str], Size] | None = None,
    ) -> list[Node]:
        grouped: OrderedDict[str, list[tuple[FieldNode, list[tuple[str, bool]]]]] = OrderedDict()
        for selection_set in sets:
            self.collect(parent, selection_set, grouped, [], set())
        nodes: list[Node] = []
        for key, found in grouped.items():
            first = found[0][0]
            name = first.name.value
            if name.startswith("__"):
                continue  # introspection and __typename: the schema's size, not the data's
            definition = parent.fields.get(name)
            if definition is None:
                continue  # validation has refused it already
            # A key selected several times is skipped only when every selection says so.
            skip_if = (
                found[0][1] if all(conditions == found[0][1] for _, conditions in found) else []
            )
            node = self.field(
                parent,
                name,
                definition,
                [node for node, _ in found],
                store,
                mutation,
                sized,
                key,
                skip_if,
            )
            if not _free(node):
                nodes.append(node)
        return nodes

    def collect(
        self,
        parent: GraphQLObjectType | GraphQLInterfaceType,
        selection_set: SelectionSetNode,
        grouped: OrderedDict[str, list[tuple[FieldNode, list[tuple[str, bool]]]]],
        conditions: list[tuple[str, bool]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            own = self.conditions(selection.directives or ())
            if own is None:
                continue  # skipped by a literal
            here = conditions + own
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append((selection, here))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if self.applies(condition.name.value if condition else None, parent):
                    self.collect(parent, selection.selection_set, grouped, here, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in visited:
                    continue
                if self.applies(fragment.type_condition.name.value, parent):
                    self.collect(parent, fragment.selection_set, grouped, here, visited | {name})

    def applies(
        self, condition: str | None, parent: GraphQLObjectType | GraphQLInterfaceType
    ) -> bool:
        if condition is None or condition == parent.name:
            return True
        named = self.schema.get_type(condition)
        if isinstance(parent, GraphQLObjectType) and isinstance(
            named, GraphQLInterfaceType | GraphQLUnionType
        ):
            return self.schema.is_sub_type(named, parent)
        # On an interface, a fragment on one of its implementations: counted as the
        # interface's own fields are (the dearest implementation is not known here).
        return isinstance(parent, GraphQLInterfaceType)

    @staticmethod
    def conditions(directives: Sequence[Any]) -> list[tuple[str, bool]] | None:
        """@skip/@include as (variable, skip when its value is this); None when a literal
        leaves the selection out."""
        found: list[tuple[str, bool]] = []
        for directive in directives:
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            skip_when = name == "skip"
            for argument in directive.arguments or ():
                if argument.name.value != "if":
                    continue
                value = argument.value
                if isinstance(value, BooleanValueNode):
                    if value.value is skip_when:
                        return None
                elif isinstance(value, VariableNode):
                    found.append((value.name.value, skip_when))
        return found

    def field(
        self,
        parent: GraphQLObjectType | GraphQLInterfaceType,
        name: str,
        definition: GraphQLField,
        field_nodes: list[FieldNode],
        inherited: int,
        mutation: bool,
        sized: tuple[frozenset[str], Size] | None,
        key: str,
        skip_if: list[tuple[str, bool]],
    ) -> Node:
        strawberry_field = definition.extensions.get(DEFINITION)
        cost: Cost | None = _directive(strawberry_field, Cost)
        store: Store | None = _directive(strawberry_field, Store)
        list_size: ListSize | None = _directive(strawberry_field, ListSize)
        named = get_named_type(definition.type)
        type_definition = named.extensions.get(DEFINITION) if named is not None else None
        type_cost: Cost | None = _directive(type_definition, Cost)
        type_store: Store | None = _directive(type_definition, Store)

        if cost is not None:
            weight = cost.weight
        elif mutation:
            weight = MUTATION_WEIGHT
        elif type_cost is not None:
            weight = type_cost.weight
        else:
            weight = 1 if is_composite_type(named) else 0
        if store is not None:
            element_store = STORE_INDEX[store.name.value]
        elif type_store is not None:
            element_store = STORE_INDEX[type_store.name.value]
        else:
            element_store = inherited
        node = Node(key=key, weight=weight, store=element_store, skip_if=skip_if)
        if store is not None and store.call:
            node.call, node.call_store = store.call, STORE_INDEX[store.name.value]

        first = field_nodes[0]
        given = {argument.name.value: argument.value for argument in first.arguments or ()}
        for arg_name, argument in definition.args.items():
            self.argument_cost(node, arg_name, argument, given.get(arg_name), element_store)

        size = (
            self.size(list_size, definition, given, strawberry_field)
            if list_size is not None
            else None
        )
        nullable = get_nullable_type(definition.type)
        if is_list_type(nullable):
            if sized is not None and name in sized[0]:
                node.size = sized[1]
            else:
                node.size = size if size is not None else Size()
        below = (
            (frozenset(list_size.sized_fields), size)
            if list_size is not None and list_size.sized_fields and size is not None
            else None
        )
        sets = [f.selection_set for f in field_nodes if f.selection_set is not None]
        if not sets or named is None:
            return node
        if isinstance(named, GraphQLObjectType):
            node.children = self.selection(named, sets, element_store, sized=below)
        elif isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            # Each element is priced as the type it turns out to be: its own weight and
            # store (a Campaign's row, a Task's hash), then its selection.
            node.by_type = {}
            own_weight = cost is not None or mutation
            for possible in self.schema.get_possible_types(named):
                here = element_store if store is not None else _type_store(possible, element_store)
                each = weight if own_weight else _type_weight(possible, weight)
                itself = Node(key=SELF, weight=each, store=here)
                node.by_type[possible.name] = [
                    itself,
                    *self.selection(possible, sets, here, sized=below),
                ]
            node.weight = 0
        return node

    def argument_cost(
        self,
        node: Node,
        name: str,
        argument: GraphQLArgument,
        value: ValueNode | None,
        inherited: int,
    ) -> None:
        definition = argument.extensions.get(DEFINITION)
        cost: Cost | None = _directive(definition, Cost)
        if cost is None or not cost.weight:
            return
        store: Store | None = _directive(definition, Store)
        where = STORE_INDEX[store.name.value] if store is not None else inherited
        if value is None or isinstance(value, NullValueNode):
            if argument.default_value is not None and not _is_undefined(argument.default_value):
                node.given_args.append((cost.weight, where))
        elif isinstance(value, VariableNode):
            node.variable_args.append((value.name.value, cost.weight, where))
        else:
            node.given_args.append((cost.weight, where))

    @staticmethod
    def size(
        list_size: ListSize,
        definition: GraphQLField,
        given: dict[str, ValueNode],
        strawberry_field: Any,
    ) -> Size:
        literals: list[int] = []
        variables: list[tuple[str, tuple[str, ...]]] = []
        default: int | None = None
        for slicing in list_size.slicing_arguments or ():
            name, *path = slicing.split(".")
            value: ValueNode | None = given.get(name)
            steps = list(path)
            # Into an input object written in the document, as far as it is written.
            while steps and isinstance(value, ObjectValueNode):
                step = steps.pop(0)
                value = next((f.value for f in value.fields if f.name.value == step), None)
            if isinstance(value, IntValueNode):
                literals.append(int(value.value))
            elif isinstance(value, ListValueNode):
                literals.append(len(value.values))
            elif isinstance(value, VariableNode):
                variables.append((value.name.value, tuple(steps)))
            if default is None:
                default = _default_at(definition, name, path)
        if default is None:
            default = list_size.assumed if list_size.assumed is not None else DEFAULT_LIST_SIZE
        metadata = getattr(strawberry_field, "metadata", None) or {}
        computed: SizeFunction | None = metadata.get(SIZE_FROM)
        arguments: list[tuple[str, bool, Any]] = []
        if computed is not None:
            for name, argument in definition.args.items():
                value = given.get(name)
                if isinstance(value, VariableNode):
                    arguments.append((name, True, value.name.value))
                elif value is not None:
                    arguments.append((name, False, value_from_ast_untyped(value)))
                elif not _is_undefined(argument.default_value):
                    arguments.append((name, False, argument.default_value))
        return Size(
            tuple(literals),
            tuple(variables),
            default,
            list_size.assumed,
            computed,
            tuple(arguments),
        )


def _free(node: Node) -> bool:
    """A node that can never cost anything (a plain scalar, or an object of free parts):
    left out of the tree, so that neither pricing nor the walk of a response visits it."""
    return not (
        node.weight
        or node.call
        or node.given_args
        or node.variable_args
        or node.children
        or node.by_type
    )


def _default_at(definition: GraphQLField, name: str, path: list[str]) -> int | None:
    """The schema's default for a slicing argument: the argument's own, or for a path into
    an input object, that input field's default."""
    argument = definition.args.get(name)
    if argument is None:
        return None
    if not path:
        return _count(argument.default_value)
    kind: Any = get_named_type(argument.type)
    for step in path:
        input_field = getattr(kind, "fields", {}).get(step)
        if input_field is None:
            return None
        if step == path[-1]:
            return _count(input_field.default_value)
        kind = get_named_type(input_field.type)
    return None


def _is_undefined(value: object) -> bool:
    return value is Undefined


def _type_weight(gtype: GraphQLObjectType, default: int) -> int:
    cost: Cost | None = _directive(gtype.extensions.get(DEFINITION), Cost)
    return cost.weight if cost is not None else default


def _type_store(gtype: GraphQLObjectType, inherited: int) -> int:
    store: Store | None = _directive(gtype.extensions.get(DEFINITION), Store)
    return STORE_INDEX[store.name.value] if store is not None else inherited


_compiled: OrderedDict[tuple[int, str, str | None], OperationCost] = OrderedDict()


def operation_cost(
    schema: GraphQLSchema, document: DocumentNode, query: str, operation_name: str | None
) -> OperationCost | None:
    """The cost tree of the operation a request runs, compiled once per document; None
    when the document names no such operation (execution will say so)."""
    key = (id(schema), query, operation_name)
    found = _compiled.get(key)
    if found is not None:
        _compiled.move_to_end(key)
        return found
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return None
    found = Compiler(schema, document).operation(operations[0])
    _compiled[key] = found
    if len(_compiled) > KEPT:
        _compiled.popitem(last=False)
    return found
