"""Executing a plan a whole list level at a time.

graphql-core walks the result tree one object at a time: every field of every object is a
resolver call, often a coroutine, and its completion another chain of calls. The runner
walks the *plan* instead: each field of an object plan is resolved for every object of the
level in one loop (one call for a batch resolver, one loader round for the level), its
values completed into plain dicts in the same loop, and the objects it yields become the
next level, one batch per sub-selection. The number of coroutines and loader dispatches
grows with the size of the query, not with the number of objects it returns.

It keeps graphql-core's semantics where a client can see them, and the differential test
(tests/api/test_fast_execution.py) holds it to that: the same values, the same errors with
the same messages, locations and paths, null propagation to the nearest nullable position,
and graphql-core 3.3's rule that an error below a position already nulled is not reported.
Values the fast loops do not recognise (``None``, exceptions, awaitables, values of another
class) take ``Run.value``, which completes them exactly as ``Executor.complete_value`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from math import isfinite
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, located_error
from graphql.execution.executor import Executor, invalid_return_type_error
from graphql.pyutils import Path, is_iterable
from strawberry.schema.schema_converter import get_arguments
from strawberry.types.info import Info

from app.execution.arguments import argument_values
from app.execution.leaves import JSON_TYPES, MAX_INT, MIN_INT, LeafKind
from app.execution.plan import (
    AbstractShape,
    FieldPlan,
    LeafShape,
    ListShape,
    ObjectPlan,
    ObjectShape,
    OperationPlan,
    Shape,
    Strategy,
    object_shape_for,
    plan_object,
)

if TYPE_CHECKING:
    from app.execution.context import ChimeraExecutionContext

complete_leaf_value = Executor.complete_leaf_value


# A position in the response that holds an object or a list, as an index into the run's
# position table (``Run.at_*``): the container and key where ``None`` goes when a non-null
# error propagates to it, whether it may be null, and the position that contains it. An
# index into four lists rather than an object per position: one is made for every object
# of a response, and objects are what the garbage collector walks while requests are in
# flight. ROOT is the response's ``data`` itself.
Cell = int
ROOT = -1


class Batch:
    """The objects of one level that share a sub-selection, their result dicts and cells."""

    __slots__ = ("cells", "dicts", "objs")

    def __init__(self) -> None:
        self.objs: list[Any] = []
        self.dicts: list[dict[str, Any]] = []
        self.cells: list[Cell] = []


Sink = dict[int, tuple[ObjectPlan, Batch]]
Jobs = list[Awaitable[None]]


class Run:
    def __init__(self, ctx: ChimeraExecutionContext, plan: OperationPlan) -> None:
        self.ctx = ctx
        self.plan = plan
        self.errors: list[GraphQLError] = ctx.collected_errors.errors
        self.nulled: set[Cell] = set()  # positions nulled by propagation
        self.at_container: list[Any] = []
        self.at_key: list[str | int] = []
        self.at_nullable: list[bool] = []
        self.at_parent: list[Cell] = []
        self.root_nulled = False
        self.is_awaitable = ctx.is_awaitable
        schema = ctx.schema._strawberry_schema  # type: ignore[attr-defined]
        self.config = schema.config
        self.scalars = schema.schema_converter.scalar_registry

    async def execute(self, root_value: Any) -> dict[str, Any] | None:
        data: dict[str, Any] = {}
        batch = Batch()
        batch.objs.append(root_value)
        batch.dicts.append(data)
        batch.cells.append(ROOT)
        root = self.plan.root
        if root.serial:
            for field in root.fields:
                jobs: Jobs = []
                self.run_field(field, batch, jobs)
                await drain(jobs)
        else:
            await self.run_object(root, batch)
        return None if self.root_nulled else data

    async def run_object(self, plan: ObjectPlan, batch: Batch) -> None:
        jobs: Jobs = []
        for field in plan.fields:
            self.run_field(field, batch, jobs)
        await drain(jobs)

    # -- resolving a field for every object of a level --------------------------------

    def run_field(self, fp: FieldPlan, batch: Batch, jobs: Jobs) -> None:
        strategy = fp.strategy
        objs = batch.objs
        values: list[Any]
        if strategy is Strategy.COLUMN:
            if fp.fused and self.complete_columns(fp, batch, jobs):
                return
            values = self.columns(fp, objs)
            if fp.names is not None:
                self.complete_stored_enum(fp, values, batch, jobs)
                return
            if fp.convert is not None:
                values = converted(fp.convert, values)
        elif strategy is Strategy.ATTRIBUTE:
            try:
                values = list(map(fp.getter, objs))
            except Exception:
                values = [_attribute(fp.attr, obj) for obj in objs]
        elif strategy is Strategy.TYPENAME:
            name = fp.parent_type.name
            for result in batch.dicts:
                result[fp.key] = name
            return
        elif strategy is Strategy.DIRECT:
            try:
                kwargs = self.arguments(fp, batch)
            except Exception as error:
                self.fail_all(fp, batch, error)
                return
            values = self.call_each(fp, objs, kwargs)
        elif strategy is Strategy.BATCH:
            try:
                info = self.info(fp, batch)
                kwargs = self.arguments(fp, batch, info)
                result = fp.call(objs, info, **kwargs)  # type: ignore[misc]
            except Exception as error:
                self.fail_all(fp, batch, error)
                return
            if self.is_awaitable(result):
                for holder in batch.dicts:
                    holder[fp.key] = None  # keeps the response's key order
                jobs.append(self.complete_later(fp, result, batch))
                return
            values = self.checked(fp, result, batch)
        else:
            values = self.stock(fp, batch)
        self.complete(fp, values, batch, jobs)

    def complete_columns(self, fp: FieldPlan, batch: Batch, jobs: Jobs) -> bool:
        """A leaf column read and completed in one pass, for the kinds that are most of a
        page (text, ids, times, integers, decimals); False when the field is not one of
        them. What the pass does not recognise goes to ``value`` as the resolver's result
        would."""
        shape = fp.shape
        assert isinstance(shape, LeafShape)
        leaf, key, name, convert = shape.leaf, fp.key, fp.column, fp.convert
        kind, cls, nullable, value = leaf.kind, leaf.cls, shape.nullable, self.value
        rows = zip(batch.objs, batch.dicts, batch.cells, strict=True)
        v: Any
        if kind is LeafKind.SAME and convert is None:
            for obj, holder, cell in rows:
                try:
                    v = obj.row[name]
                except Exception as error:
                    v = error
                if v.__class__ is cls:
                    holder[key] = v
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.SAME:
            assert convert is not None
            for obj, holder, cell in rows:
                try:
                    v = convert(obj.row[name])
                except Exception as error:
                    v = error
                if v.__class__ is cls:
                    holder[key] = v
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.ISOFORMAT and convert is None:
            for obj, holder, cell in rows:
                try:
                    v = obj.row[name]
                except Exception as error:
                    v = error
                if v.__class__ is cls:
                    holder[key] = v.isoformat()  # type: ignore[attr-defined]
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.INT and convert is None:
            for obj, holder, cell in rows:
                try:
                    v = obj.row[name]
                except Exception as error:
                    v = error
                if v.__class__ is int and MIN_INT <= v <= MAX_INT:
                    holder[key] = v
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.TO_STR and convert is None:
            for obj, holder, cell in rows:
                try:
                    v = obj.row[name]
                except Exception as error:
                    v = error
                if v.__class__ is cls:
                    holder[key] = str(v)
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        else:
            return False
        return True

    @staticmethod
    def columns(fp: FieldPlan, objs: list[Any]) -> list[Any]:
        name = fp.column
        try:
            return [obj.row[name] for obj in objs]
        except Exception:
            return [_column(name, obj) for obj in objs]

    def complete_stored_enum(
        self, fp: FieldPlan, values: list[Any], batch: Batch, jobs: Jobs
    ) -> None:
        """An enum column: a valid stored value is its GraphQL name; anything else goes
        through the conversion and completion the resolver's value would."""
        names, key, convert = fp.names, fp.key, fp.convert
        assert names is not None and convert is not None
        value = self.value
        for holder, v, cell in zip(batch.dicts, values, batch.cells, strict=True):
            name = names.get(v) if v.__class__ is str else None
            if name is not None:
                holder[key] = name
                continue
            if not isinstance(v, Exception):
                try:
                    v = convert(v)
                except Exception as error:
                    v = error
            value(fp.shape, v, holder, key, cell, fp, None, jobs)

    def call_each(self, fp: FieldPlan, objs: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        call = fp.call
        assert call is not None
        values: list[Any] = []
        append = values.append
        if fp.source_name is not None:
            name = fp.source_name
            for obj in objs:
                kwargs[name] = obj
                try:
                    append(call(obj, **kwargs) if fp.takes_self else call(**kwargs))
                except Exception as error:
                    append(error)
        elif fp.takes_self:
            for obj in objs:
                try:
                    append(call(obj, **kwargs))
                except Exception as error:
                    append(error)
        else:
            for _obj in objs:
                try:
                    append(call(**kwargs))
                except Exception as error:
                    append(error)
        return values

    def stock(self, fp: FieldPlan, batch: Batch) -> list[Any]:
        """graphql-core's resolve function, with a resolve-info and arguments per object."""
        ctx = self.ctx
        resolve = fp.field_def.resolve or ctx.field_resolver
        values: list[Any] = []
        for obj, cell in zip(batch.objs, batch.cells, strict=True):
            info = ctx.build_resolve_info(
                fp.field_def, fp.nodes, fp.parent_type, self.graphql_path(cell, fp.key, fp)
            )
            try:
                args = self.raw_arguments(fp)
                values.append(resolve(obj, info, **args))
            except Exception as error:
                values.append(error)
        return values

    def raw_arguments(self, fp: FieldPlan) -> dict[str, Any]:
        """graphql-core's coerced arguments; the one place the runner computes them, so that
        arguments that do not coerce are BAD_USER_INPUT on every strategy, as on the stock
        executor (app/execution/arguments.py)."""
        if not fp.has_args:
            return {}
        details = fp.details[0]
        return argument_values(
            fp.field_def,
            details.node,
            self.ctx.variable_values,
            details.fragment_variable_values,
            self.ctx.hide_suggestions,
        )

    def arguments(
        self, fp: FieldPlan, batch: Batch, info: Info[Any, Any] | None = None
    ) -> dict[str, Any]:
        """The resolver's Python arguments, converted once for the whole level the way
        Strawberry converts them for each call; a batch resolver gets ``info`` on its own."""
        sfield = fp.sfield
        assert sfield is not None and sfield.base_resolver is not None
        info_parameter = sfield.base_resolver.info_parameter
        if not fp.has_args and info_parameter is None:
            return {}
        info = info or self.info(fp, batch)
        _args, kwargs = get_arguments(
            field=sfield,
            source=batch.objs[0],
            info=info,
            kwargs=self.raw_arguments(fp),
            config=self.config,
            scalar_registry=self.scalars,
        )
        if fp.strategy is Strategy.BATCH and info_parameter is not None:
            kwargs.pop(info_parameter.name, None)
        return kwargs

    def info(self, fp: FieldPlan, batch: Batch) -> Info[Any, Any]:
        """One Info for the level (its path is the first object's): our resolvers read the
        context from it, never the path."""
        raw = self.ctx.build_resolve_info(
            fp.field_def, fp.nodes, fp.parent_type, self.graphql_path(batch.cells[0], fp.key, fp)
        )
        info: Info[Any, Any] = self.config.info_class(_raw_info=raw, _field=fp.sfield)
        return info

    async def complete_later(self, fp: FieldPlan, pending: Awaitable[Any], batch: Batch) -> None:
        try:
            result = await pending
        except Exception as error:
            self.fail_all(fp, batch, error)
            return
        jobs: Jobs = []
        self.complete(fp, self.checked(fp, result, batch), batch, jobs)
        await drain(jobs)

    def checked(self, fp: FieldPlan, result: Any, batch: Batch) -> list[Any]:
        values: list[Any] = list(result)
        if len(values) != len(batch.objs):
            error = RuntimeError(
                f"the batch resolver of {fp.parent_type.name}.{fp.name} returned "
                f"{len(values)} values for {len(batch.objs)} objects"
            )
            return [error] * len(batch.objs)
        return values

    # -- completing the values of a level ----------------------------------------------

    def complete(self, fp: FieldPlan, values: Sequence[Any], batch: Batch, jobs: Jobs) -> None:
        shape = fp.shape
        kind = type(shape)
        if kind is LeafShape:
            self.complete_leaves(fp, shape, values, batch, jobs)  # type: ignore[arg-type]
            return
        sink: Sink = {}
        key = fp.key
        value = self.value
        if kind is ObjectShape:
            assert isinstance(shape, ObjectShape) and shape.plan is not None
            cls, nullable = shape.cls, shape.nullable
            child = Batch()
            sink[id(shape.plan)] = (shape.plan, child)
            objs, dicts, cells = child.objs, child.dicts, child.cells
            at = len(self.at_key)
            containers, keys = self.at_container.append, self.at_key.append
            nullables, parents = self.at_nullable.append, self.at_parent.append
            for holder, v, cell in zip(batch.dicts, values, batch.cells, strict=True):
                if v.__class__ is cls:
                    result: dict[str, Any] = {}
                    holder[key] = result
                    objs.append(v)
                    dicts.append(result)
                    containers(holder)
                    keys(key)
                    nullables(nullable)
                    parents(cell)
                    cells.append(at)
                    at += 1
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, sink, jobs)
                    at = len(self.at_key)  # the slow path may have added positions
        else:
            for holder, v, cell in zip(batch.dicts, values, batch.cells, strict=True):
                value(shape, v, holder, key, cell, fp, sink, jobs)
        self.flush(sink, jobs)

    def complete_leaves(
        self, fp: FieldPlan, shape: LeafShape, values: Sequence[Any], batch: Batch, jobs: Jobs
    ) -> None:
        key, leaf, nullable = fp.key, shape.leaf, shape.nullable
        kind, cls = leaf.kind, leaf.cls
        value = self.value
        v: Any
        rows = zip(batch.dicts, values, batch.cells, strict=True)
        if kind is LeafKind.SAME:
            for holder, v, cell in rows:
                if v.__class__ is cls:
                    holder[key] = v
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.INT:
            for holder, v, cell in rows:
                if v.__class__ is int and MIN_INT <= v <= MAX_INT:
                    holder[key] = v
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.ENUM:
            names = leaf.names
            for holder, v, cell in rows:
                if v.__class__ is cls and v in names:
                    holder[key] = names[v]
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.ISOFORMAT:
            for holder, v, cell in rows:
                if v.__class__ is cls:
                    holder[key] = v.isoformat()  # type: ignore[attr-defined]
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.FLOAT:
            for holder, v, cell in rows:
                if v.__class__ is float and isfinite(v):
                    holder[key] = v
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.TO_STR:
            for holder, v, cell in rows:
                if v.__class__ is cls:
                    holder[key] = str(v)
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        elif kind is LeafKind.AS_IS:
            for holder, v, cell in rows:
                if v.__class__ in JSON_TYPES:
                    holder[key] = v
                elif v is None and nullable:
                    holder[key] = None
                else:
                    value(shape, v, holder, key, cell, fp, None, jobs)
        else:
            for holder, v, cell in rows:
                value(shape, v, holder, key, cell, fp, None, jobs)

    def value(
        self,
        shape: Shape,
        v: Any,
        container: Any,
        key: str | int,
        parent: Cell,
        fp: FieldPlan,
        sink: Sink | None,
        jobs: Jobs,
    ) -> None:
        """Complete one value at one position, as ``Executor.complete_value`` does."""
        if self.is_awaitable(v):
            container[key] = None  # keeps the response's key order
            jobs.append(self.complete_awaited(shape, v, container, key, parent, fp))
            return
        if isinstance(v, Exception):
            self.fail(shape.nullable, container, key, parent, fp, v)
            return
        if v is None:
            if shape.nullable:
                container[key] = None
            else:
                message = (
                    f"Cannot return null for non-nullable field {fp.parent_type.name}.{fp.name}."
                )
                self.fail(False, container, key, parent, fp, TypeError(message))
            return
        kind = type(shape)
        if kind is LeafShape:
            assert isinstance(shape, LeafShape)
            try:
                container[key] = complete_leaf_value(shape.leaf.gtype, v)
            except Exception as error:
                self.fail(shape.nullable, container, key, parent, fp, error)
            return
        assert sink is not None
        if kind is ObjectShape:
            assert isinstance(shape, ObjectShape)
            self.accept(shape, v, container, key, parent, fp, sink)
        elif kind is ListShape:
            assert isinstance(shape, ListShape)
            self.complete_list(shape, v, container, key, parent, fp, sink, jobs)
        else:
            assert isinstance(shape, AbstractShape)
            self.complete_abstract(shape, v, container, key, parent, fp, sink, jobs)

    async def complete_awaited(
        self,
        shape: Shape,
        pending: Awaitable[Any],
        container: Any,
        key: str | int,
        parent: Cell,
        fp: FieldPlan,
    ) -> None:
        try:
            v = await pending
        except Exception as error:
            v = error
        jobs: Jobs = []
        sink: Sink = {}
        self.value(shape, v, container, key, parent, fp, sink, jobs)
        self.flush(sink, jobs)
        await drain(jobs)

    def accept(
        self,
        shape: ObjectShape,
        v: Any,
        container: Any,
        key: str | int,
        parent: Cell,
        fp: FieldPlan,
        sink: Sink,
    ) -> None:
        is_type_of = shape.gtype.is_type_of
        if v.__class__ is not shape.cls and is_type_of is not None:
            try:
                info = self.ctx.build_resolve_info(
                    fp.field_def, fp.nodes, fp.parent_type, self.graphql_path(parent, key, fp)
                )
                if not is_type_of(v, info):
                    raise invalid_return_type_error(shape.gtype, v, fp.details)
            except Exception as error:
                self.fail(shape.nullable, container, key, parent, fp, error)
                return
        plan = plan_object(self.ctx, shape)
        entry = sink.get(id(plan))
        if entry is None:
            entry = sink[id(plan)] = (plan, Batch())
        batch = entry[1]
        result: dict[str, Any] = {}
        container[key] = result
        batch.objs.append(v)
        batch.dicts.append(result)
        batch.cells.append(self.position(container, key, shape.nullable, parent))

    def complete_list(
        self,
        shape: ListShape,
        v: Any,
        container: Any,
        key: str | int,
        parent: Cell,
        fp: FieldPlan,
        sink: Sink,
        jobs: Jobs,
    ) -> None:
        if v.__class__ is not list and not is_iterable(v):
            message = (
                "Expected Iterable, but did not find one for field "
                f"'{fp.parent_type.name}.{fp.name}'."
            )
            self.fail(shape.nullable, container, key, parent, fp, GraphQLError(message))
            return
        items: list[Any] = []
        container[key] = items
        cell = self.position(container, key, shape.nullable, parent)
        item = shape.item
        value = self.value
        if type(item) is ObjectShape and item.cls is not None:
            assert item.plan is not None
            entry = sink.get(id(item.plan))
            if entry is None:
                entry = sink[id(item.plan)] = (item.plan, Batch())
            batch = entry[1]
            cls, nullable = item.cls, item.nullable
            objs, dicts, cells = batch.objs, batch.dicts, batch.cells
            at = len(self.at_key)
            containers, keys = self.at_container.append, self.at_key.append
            nullables, parents = self.at_nullable.append, self.at_parent.append
            for index, x in enumerate(v):
                if x.__class__ is cls:
                    result: dict[str, Any] = {}
                    items.append(result)
                    objs.append(x)
                    dicts.append(result)
                    containers(items)
                    keys(index)
                    nullables(nullable)
                    parents(cell)
                    cells.append(at)
                    at += 1
                else:
                    items.append(None)
                    value(item, x, items, index, cell, fp, sink, jobs)
                    at = len(self.at_key)
        else:
            for index, x in enumerate(v):
                items.append(None)
                value(item, x, items, index, cell, fp, sink, jobs)

    def complete_abstract(
        self,
        shape: AbstractShape,
        v: Any,
        container: Any,
        key: str | int,
        parent: Cell,
        fp: FieldPlan,
        sink: Sink,
        jobs: Jobs,
    ) -> None:
        ctx = self.ctx
        info = ctx.build_resolve_info(
            fp.field_def, fp.nodes, fp.parent_type, self.graphql_path(parent, key, fp)
        )
        try:
            resolve_type = shape.gtype.resolve_type or ctx.type_resolver
            runtime = resolve_type(v, info, shape.gtype)
            if self.is_awaitable(runtime):
                container[key] = None
                jobs.append(self.complete_resolved(shape, v, runtime, container, key, parent, fp))
                return
            concrete = ctx.ensure_valid_runtime_type(runtime, shape.gtype, fp.details, info, v)
        except Exception as error:
            self.fail(shape.nullable, container, key, parent, fp, error)
            return
        self.accept(object_shape_for(ctx, shape, concrete), v, container, key, parent, fp, sink)

    async def complete_resolved(
        self,
        shape: AbstractShape,
        v: Any,
        pending: Awaitable[Any],
        container: Any,
        key: str | int,
        parent: Cell,
        fp: FieldPlan,
    ) -> None:
        ctx = self.ctx
        info = ctx.build_resolve_info(
            fp.field_def, fp.nodes, fp.parent_type, self.graphql_path(parent, key, fp)
        )
        try:
            runtime = await pending
            concrete = ctx.ensure_valid_runtime_type(runtime, shape.gtype, fp.details, info, v)
        except Exception as error:
            self.fail(shape.nullable, container, key, parent, fp, error)
            return
        sink: Sink = {}
        jobs: Jobs = []
        self.accept(object_shape_for(ctx, shape, concrete), v, container, key, parent, fp, sink)
        self.flush(sink, jobs)
        await drain(jobs)

    def flush(self, sink: Sink, jobs: Jobs) -> None:
        for plan, batch in sink.values():
            if batch.objs:
                jobs.append(self.run_object(plan, batch))

    # -- errors and null propagation ---------------------------------------------------

    def fail_all(self, fp: FieldPlan, batch: Batch, error: Exception) -> None:
        for holder, cell in zip(batch.dicts, batch.cells, strict=True):
            self.fail(fp.shape.nullable, holder, fp.key, cell, fp, error)

    def fail(
        self,
        nullable: bool,
        container: Any,
        key: str | int,
        parent: Cell,
        fp: FieldPlan,
        raw: Exception,
    ) -> None:
        """An error at a position: null there if it may be null, else null the nearest
        nullable position above it; report it unless that position was already nulled."""
        error = located_error(raw, fp.nodes, self.path_of(parent, key))
        container[key] = None
        if nullable:
            if not self.is_nulled(parent):
                self.errors.append(error)
            return
        cell = parent
        while cell != ROOT:
            self.at_container[cell][self.at_key[cell]] = None
            if self.at_nullable[cell]:
                if not self.is_nulled(cell):
                    self.nulled.add(cell)
                    self.errors.append(error)
                return
            cell = self.at_parent[cell]
        if not self.root_nulled:
            self.root_nulled = True
            self.errors.append(error)

    def is_nulled(self, cell: Cell) -> bool:
        if self.root_nulled:
            return True
        if not self.nulled:
            return False
        nulled, parents = self.nulled, self.at_parent
        while cell != ROOT:
            if cell in nulled:
                return True
            cell = parents[cell]
        return False

    def position(self, container: Any, key: str | int, nullable: bool, parent: Cell) -> Cell:
        self.at_container.append(container)
        self.at_key.append(key)
        self.at_nullable.append(nullable)
        self.at_parent.append(parent)
        return len(self.at_key) - 1

    def path_of(self, cell: Cell, key: str | int) -> list[str | int]:
        keys: list[str | int] = [key]
        while cell != ROOT:
            keys.append(self.at_key[cell])
            cell = self.at_parent[cell]
        keys.reverse()
        return keys

    def graphql_path(self, cell: Cell, key: str | int, fp: FieldPlan) -> Path:
        """graphql-core's Path of a position, for the resolve-infos resolvers receive."""
        path: Path | None = None
        for part in self.path_of(cell, key)[:-1]:
            path = Path(path, part, None)
        return Path(path, key, fp.parent_type.name if isinstance(key, str) else None)


def _column(name: str, obj: Any) -> Any:
    try:
        return obj.row[name]
    except Exception as error:
        return error


def converted(convert: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    results: list[Any] = []
    append = results.append
    for v in values:
        if isinstance(v, Exception):
            append(v)
            continue
        try:
            append(convert(v))
        except Exception as error:
            append(error)
    return results


def _attribute(name: str, obj: Any) -> Any:
    try:
        return getattr(obj, name)
    except Exception as error:
        return error


async def drain(jobs: Jobs) -> None:
    """Wait for every job; a job failing (a bug, never a field error) fails the operation
    once the others have settled, so nothing is left running behind it."""
    if not jobs:
        return
    if len(jobs) == 1:
        await jobs[0]
        return
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
