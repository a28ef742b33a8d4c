"""The schema as an Apollo Federation v2 subgraph (``CHIMERA_FEDERATION=true``).

The same types, resolvers, loaders and extensions as the plain schema, plus what a gateway
needs: ``@key(fields: "id")`` on each entity, ``_service { sdl }`` and ``_entities``
(resolvers/federation/entities.py), and the ``@link`` that imports Federation's directives.

The plain schema must not change for clients that never see a gateway (``schema.graphql``
stays as it is, introspection lists no ``@key`` or ``_FieldSet``), yet Strawberry reads a
type's directives from its one shared definition. So ``@key`` is put on the entity types
only while the federated schema is built and its SDL printed, and taken off again: both
happen synchronously in ``FederatedSchema.__init__``, so no other schema, built or printed
in the same process, ever sees it. The SDL is printed once, there, and ``_service`` returns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal

import strawberry.federation
from graphql import GraphQLError
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.printer import print_schema
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app.error_logging import log_errors
from resolvers.federation.entities import ENTITY_TYPES, FederationQueries

# The newest version every gateway this project tests with composes (Hive Gateway's
# composition and Apollo's both accept it); @key is all the subgraph uses.
FEDERATION_VERSION: Final[Literal["2.5"]] = "2.5"


@contextmanager
def entity_keys() -> Iterator[None]:
    """``@key(fields: "id")`` on every entity type for the duration of the block."""
    definitions = [t.__strawberry_definition__ for t in ENTITY_TYPES]  # type: ignore[attr-defined]
    saved = [definition.directives for definition in definitions]
    for definition in definitions:
        definition.directives = [*(definition.directives or ()), Key(fields=FieldSet("id"))]
    try:
        yield
    finally:
        for definition, directives in zip(definitions, saved, strict=True):
            definition.directives = directives


class FederatedSchema(strawberry.federation.Schema):
    def __init__(self, *, query: type, **kwargs: Any) -> None:
        with entity_keys():
            super().__init__(
                query=merge_types("Query", (query, FederationQueries)),
                federation_version=FEDERATION_VERSION,
                **kwargs,
            )
            self.federation_sdl = print_schema(self) + "\n"

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors)

    def as_str(self) -> str:
        return self.federation_sdl
