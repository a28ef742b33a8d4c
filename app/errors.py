"""Errors a client may see, each carrying one of the public ``extensions.code`` values.

Raising one of these from anywhere below a resolver is the only way to show a message to a
client: anything else is masked as INTERNAL_SERVER_ERROR, so internals never leak.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    OPERATION_LIMIT = "OPERATION_LIMIT"
    COST_LIMIT = "COST_LIMIT"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class ChimeraError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code.value, **extensions}


class Unauthenticated(ChimeraError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(ChimeraError):
    code = ErrorCode.FORBIDDEN


class NotFound(ChimeraError):
    code = ErrorCode.NOT_FOUND


class BadUserInput(ChimeraError):
    code = ErrorCode.BAD_USER_INPUT


class Conflict(ChimeraError):
    code = ErrorCode.CONFLICT


class BudgetExceeded(ChimeraError):
    """A change that would take a campaign's spending past its budget, or below zero."""

    code = ErrorCode.BUDGET_EXCEEDED


class IdempotencyKeyReused(ChimeraError):
    """An idempotency key already used, in this tenant, for a different input."""

    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class LeaseExpired(ChimeraError):
    """A task call with a lease token that no longer holds the task: the lease ran out, the
    task was cancelled, or another claim has it. Nothing was changed."""

    code = ErrorCode.LEASE_EXPIRED


class VersionConflict(ChimeraError):
    """A compare-and-set whose expected version is no longer the current one."""

    code = ErrorCode.VERSION_CONFLICT


class CostLimit(ChimeraError):
    """An operation priced above what one operation may cost; nothing was executed."""

    code = ErrorCode.COST_LIMIT


class RateLimited(ChimeraError):
    """A tenant's or a client's bucket too low for an operation's price; nothing was
    executed. ``retryAfter`` (seconds) says when it would be served."""

    code = ErrorCode.RATE_LIMITED


class PersistedQueryNotFound(ChimeraError):
    """A document hash this server does not know (yet): send the document with it."""

    code = ErrorCode.PERSISTED_QUERY_NOT_FOUND


class PersistedQueryNotSupported(ChimeraError):
    """A bare document hash, with automatic persisted queries turned off."""

    code = ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED


class StoreUnavailable(ChimeraError):
    code = ErrorCode.STORE_UNAVAILABLE

    def __init__(self, store: str, detail: str = "") -> None:
        message = f"{store} is unavailable" + (f": {detail}" if detail else "")
        super().__init__(message, store=store)
        self.store = store
