"""How GraphQL errors are logged: a client's mistake is not the server's fault.

Strawberry logs every error at ERROR with its traceback, so a wrong id cost 2 KB of log
and hid the real faults among thousands of client errors. Here an error the client caused
(bad input, missing or refused credentials, a conflict, a limit) is one INFO line with its
code; a store outage is one WARNING line naming the store and the cause; only errors no
one meant to raise keep the traceback, at ERROR.
"""

from __future__ import annotations

import logging

from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from app.errors import ChimeraError, ErrorCode, StoreUnavailable
from app.extensions.error_codes import code_for

log = logging.getLogger("chimera.errors")

# Strawberry's own refusals of a request (no query, an operationName that names nothing, an
# operation type the transport does not run): the client's mistake, whatever their class.
REQUEST_MISTAKES = (
    ChimeraError,
    GraphQLError,
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
    MissingQueryError,
)

CLIENT_CODES = frozenset(
    {
        ErrorCode.UNAUTHENTICATED.value,
        ErrorCode.FORBIDDEN.value,
        ErrorCode.NOT_FOUND.value,
        ErrorCode.BAD_USER_INPUT.value,
        ErrorCode.CONFLICT.value,
        ErrorCode.BUDGET_EXCEEDED.value,
        ErrorCode.IDEMPOTENCY_KEY_REUSED.value,
        ErrorCode.RATE_LIMITED.value,
        ErrorCode.OPERATION_LIMIT.value,
        ErrorCode.COST_LIMIT.value,
        ErrorCode.PERSISTED_QUERY_NOT_FOUND.value,
        ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED.value,
        ErrorCode.LEASE_EXPIRED.value,
        ErrorCode.VERSION_CONFLICT.value,
    }
)


def log_errors(errors: list[GraphQLError]) -> None:
    for error in errors:
        original = error.original_error
        code = (error.extensions or {}).get("code") or code_for(error)
        where = ".".join(str(p) for p in error.path) if error.path else "-"
        if isinstance(original, StoreUnavailable):
            cause = original.__cause__
            log.warning(
                "%s at %s: %s%s", code, where, error.message, f" ({cause!r})" if cause else ""
            )
        elif code in CLIENT_CODES and (
            # graphql-core wraps a variable's coercion error in another GraphQLError
            original is None or isinstance(original, REQUEST_MISTAKES)
        ):
            log.info("%s at %s: %s", code, where, error.message)
        else:
            log.error("%s at %s: %s", code, where, error.message, exc_info=original)
