"""How a leaf value becomes JSON: the common cases checked by exact type, the rest by
graphql-core's own coercion.

graphql-core coerces every scalar and enum through a chain of isinstance checks; for the
values this service actually returns (a ``str`` for a String, an ``int`` for an Int, a
member of the right Enum) that chain always ends in the same place. A ``LeafKind`` names
that place, so the runner can take it with one exact-type test and fall back to
``Executor.complete_leaf_value`` (the same function the stock executor calls, with the same
messages) for anything else.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLScalarType,
    GraphQLString,
)
from strawberry.scalars import JSON
from strawberry.schema.types.base_scalars import isoformat
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY


class LeafKind(IntEnum):
    SLOW = 0  # always graphql-core's coercion
    SAME = 1  # a value of exactly ``cls`` is its own JSON (String, ID, Boolean)
    INT = 2  # an int within GraphQL's 32-bit range is its own JSON
    ENUM = 3  # a member of ``cls`` becomes its GraphQL name
    ISOFORMAT = 4  # a value of exactly ``cls`` becomes ``value.isoformat()``
    TO_STR = 5  # a value of exactly ``cls`` becomes ``str(value)``
    FLOAT = 6  # a finite float is its own JSON
    AS_IS = 7  # a JSON value (an object, array, string, number or boolean) is its own JSON


MIN_INT, MAX_INT = -(2**31), 2**31 - 1

ISO_TYPES: dict[str, type] = {"DateTime": dt.datetime, "Date": dt.date, "Time": dt.time}
# Strawberry's JSON scalar returns what it is given: for it, graphql-core's coercion of a
# non-null value is one call that changes nothing.
JSON_AS_IS = DEFAULT_SCALAR_REGISTRY[JSON].serialize
JSON_TYPES = frozenset({dict, list, str, int, float, bool})


@dataclass(eq=False)
class Leaf:
    gtype: GraphQLLeafType
    kind: LeafKind
    cls: type | None = None
    names: dict[Any, str] = field(default_factory=dict)


def leaf_for(gtype: GraphQLLeafType) -> Leaf:
    if gtype is GraphQLString or gtype is GraphQLID:
        return Leaf(gtype, LeafKind.SAME, str)
    if gtype is GraphQLBoolean:
        return Leaf(gtype, LeafKind.SAME, bool)
    if gtype is GraphQLInt:
        return Leaf(gtype, LeafKind.INT, int)
    if gtype is GraphQLFloat:
        return Leaf(gtype, LeafKind.FLOAT, float)
    if isinstance(gtype, GraphQLEnumType):
        wrapped = getattr(gtype, "wrapped_cls", None)
        if isinstance(wrapped, type) and issubclass(wrapped, Enum):
            return Leaf(gtype, LeafKind.ENUM, wrapped, _enum_names(gtype, wrapped))
        return Leaf(gtype, LeafKind.SLOW)
    if isinstance(gtype, GraphQLScalarType):
        coerce = gtype.coerce_output_value
        if coerce is isoformat and gtype.name in ISO_TYPES:
            return Leaf(gtype, LeafKind.ISOFORMAT, ISO_TYPES[gtype.name])
        if coerce is str and gtype.name == "Decimal":
            return Leaf(gtype, LeafKind.TO_STR, decimal.Decimal)
        if coerce is JSON_AS_IS:
            return Leaf(gtype, LeafKind.AS_IS)
    return Leaf(gtype, LeafKind.SLOW)


def _enum_names(gtype: GraphQLEnumType, wrapped: type[Enum]) -> dict[Any, str]:
    """Member -> name, as Strawberry's enum type finds it: the first GraphQL value whose
    ``.value`` equals the member's."""
    names: dict[Any, str] = {}
    for member in wrapped:
        for name, value in gtype.values.items():
            if member.value == value.value:
                names[member] = name
                break
    return names
