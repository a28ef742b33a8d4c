"""Which PostgreSQL a query reads from, decided once per operation before any resolver runs
(app/stores/postgres/replicas.py). Only in the schema when `DATABASE_READ_URLS` is set: an
app without replicas pays nothing for it.

A query over HTTP reads from a replica that is within the lag bound and has replayed the
caller's last write; a mutation reads (its payload) and writes on the primary, and then
records where it left the primary for its caller's next queries. Operations over a
WebSocket stay on the primary: a subscription's event must show the state that caused it,
which a lagging replica may not have yet.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.stores.failures import is_store_failure

log = logging.getLogger(__name__)


class ReadRouting(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        context = ctx.context
        replicas = context.stores.replicas
        principal = context.principal
        if (
            replicas is None
            or principal is None
            or ctx.result is not None  # refused before it ran
            or isinstance(context.request, WebSocket)
        ):
            yield
            return
        if ctx.operation_type is OperationType.QUERY:
            try:
                written = await replicas.written(principal.tenant_id, principal.client)
            except Exception as exc:
                if not is_store_failure(exc):
                    raise
                yield  # the caller's last write is unknown: the primary has it
                return
            context.loaders.read_from(replicas.for_reads(written))
            yield
            return
        yield
        if ctx.operation_type is OperationType.MUTATION:
            try:
                await replicas.note_write(principal.tenant_id, principal.client)
            except Exception as exc:
                if not is_store_failure(exc):
                    raise
                # Its next queries may then read a replica that has not replayed this
                # write yet, for at most the lag bound.
                log.warning("could not record a write's position for its caller: %r", exc)
