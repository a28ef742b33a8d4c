"""The cost directives clients read in schema.graphql, next to the fields they price.

``@cost`` and ``@listSize`` are IBM's GraphQL Cost Directives, as Apollo Router's demand
control and Hive Router read them, so a gateway in front of Chimera prices its operations the
same way Chimera does. ``@store`` is Chimera's own: which store a field's cost is spent in
(its elements' cost, and ``call``, what one store call costs each time the field is resolved:
a vector search, an embedding), so that a price says where it will be paid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import strawberry
from strawberry.schema_directive import Location

from app.pagination import MAX_PAGE_SIZE


@strawberry.enum(description="Where a field's cost is spent.")
class CostStore(Enum):
    POSTGRES = "POSTGRES"
    REDIS = "REDIS"
    VECTOR = "VECTOR"
    EMBEDDING = "EMBEDDING"
    OBJECT_STORAGE = "OBJECT_STORAGE"
    COMPUTE = "COMPUTE"  # made by the layer itself from what it already holds


@strawberry.schema_directive(
    name="cost",
    locations=[
        Location.FIELD_DEFINITION,
        Location.OBJECT,
        Location.INTERFACE,
        Location.UNION,
        Location.ARGUMENT_DEFINITION,
        Location.SCALAR,
        Location.ENUM,
        Location.INPUT_FIELD_DEFINITION,
    ],
    description="Points per element this field (or each object of this type) returns, in "
    "place of the default (1 for an object, 0 for a scalar); on an argument, points charged "
    "once when the argument is given. IBM's GraphQL cost specification.",
)
class Cost:
    weight: int


@strawberry.schema_directive(
    name="listSize",
    locations=[Location.FIELD_DEFINITION],
    description="How many elements a list field (or the `sizedFields` of the object it "
    "returns) holds: the value of a slicing argument, or `assumedSize`. IBM's GraphQL cost "
    "specification.",
)
class ListSize:
    # Arguments not given stay UNSET, so that the SDL leaves them out rather than printing
    # `null`, which a federation composition refuses for `@listSize`'s list arguments.
    assumed_size: int | None = strawberry.UNSET
    slicing_arguments: list[str] | None = strawberry.UNSET
    sized_fields: list[str] | None = strawberry.UNSET
    require_one_slicing_argument: bool = True

    @property
    def assumed(self) -> int | None:
        """``assumed_size``, None when not given."""
        return None if self.assumed_size is strawberry.UNSET else self.assumed_size


@strawberry.schema_directive(
    name="store",
    locations=[
        Location.FIELD_DEFINITION,
        Location.OBJECT,
        Location.INTERFACE,
        Location.UNION,
        Location.ARGUMENT_DEFINITION,
    ],
    description="The store this field's (or this type's) cost is spent in, and `call`: the "
    "points of the store call the field makes each time it is resolved. Fields below take "
    "the store of the nearest field or type that names one.",
)
class Store:
    name: CostStore
    call: int = 0


POSTGRES = Store(name=CostStore.POSTGRES)
REDIS = Store(name=CostStore.REDIS)
OBJECT_STORAGE = Store(name=CostStore.OBJECT_STORAGE)


# A search text argument: embedding it is work of its own, charged when it is given.
EMBEDDED_TEXT: list[object] = [Cost(weight=10), Store(name=CostStore.EMBEDDING)]


def vector_search(*, call: int, limit: int) -> list[object]:
    """The directives of a similarity search's hit list: sized by `limit` (at most `limit`),
    and `call` points of vector index work each time it runs."""
    return [
        ListSize(
            assumed_size=limit,
            slicing_arguments=["limit"],
            require_one_slicing_argument=False,
        ),
        Store(name=CostStore.VECTOR, call=call),
    ]


def connection(*, call: int = 0, store: CostStore = CostStore.POSTGRES) -> list[object]:
    """The directives of a paged connection field: sized by `first` (its default when
    absent), its elements under `edges`, its cost spent in `store`."""
    return [
        ListSize(
            assumed_size=MAX_PAGE_SIZE,
            slicing_arguments=["first"],
            sized_fields=["edges"],
            require_one_slicing_argument=False,
        ),
        Store(name=store, call=call),
    ]


# Field metadata naming a function of the field's arguments (GraphQL names, values as sent)
# that says how many elements it returns, or None when it cannot tell.
SIZE_FROM = "cost-size-from"
SizeFunction = Callable[[Mapping[str, Any]], int | None]


def size_from(function: SizeFunction) -> dict[str, object]:
    return {SIZE_FROM: function}
