"""What the log lines of one request say about it: set as the request arrives (the access
log, app/access_log.py), filled in as it is served (tenant by the GraphQL context, operation
and cost by the extensions), read by every log line written meanwhile (app/logs.py)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestLog:
    tenant: str | None = None
    operation: str | None = None
    cost: int | None = None


current_request: ContextVar[RequestLog | None] = ContextVar("current_request", default=None)


def note_tenant(slug: str) -> None:
    request = current_request.get()
    if request is not None:
        request.tenant = slug


def note_operation(name: str | None, cost: int | None = None) -> None:
    request = current_request.get()
    if request is not None:
        if name is not None:
            request.operation = name
        if cost is not None:
            request.cost = cost
