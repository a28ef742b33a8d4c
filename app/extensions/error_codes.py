"""Every error leaves with ``extensions.code`` set to one of the public codes."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from app.errors import ChimeraError, ErrorCode
from app.stores.failures import is_store_failure

LIMIT_MARKERS = (
    "exceeds maximum operation depth",
    "aliases found",
    "document contains more than",
)


def code_for(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, ChimeraError):
        return original.code.value
    if error.path is None:
        # Parse, validation and variable coercion errors: the operation itself was wrong.
        message = error.message.lower()
        if any(marker in message for marker in LIMIT_MARKERS):
            return ErrorCode.OPERATION_LIMIT.value
        return ErrorCode.BAD_USER_INPUT.value
    return ErrorCode.INTERNAL_SERVER_ERROR.value


def error_code(error: GraphQLError) -> str:
    """The code a response carries for ``error``: the one set on it, else the one it gets."""
    return str((error.extensions or {}).get("code") or code_for(error))


def should_mask(error: GraphQLError) -> bool:
    """Hide what we did not mean to say: unexpected exceptions raised while resolving."""
    original = error.original_error
    if isinstance(original, ChimeraError) or error.path is None:
        return False
    # Permission errors and others that carry a deliberate code are meant for the client.
    return not (error.extensions or {}).get("code")


class MaskInternalErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask, error_message="Internal server error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        if error.original_error is not None and is_store_failure(error.original_error):
            # A write path that lost its database mid-request: say so, without the details.
            masked.message = "A store is unavailable; try again shortly"
            masked.extensions = {"code": ErrorCode.STORE_UNAVAILABLE.value}
        else:
            masked.extensions = {"code": ErrorCode.INTERNAL_SERVER_ERROR.value}
        return masked


def add_codes(errors: list[GraphQLError]) -> None:
    for error in errors:
        extensions = dict(error.extensions or {})
        if isinstance(error.original_error, ChimeraError):
            extensions = {**error.original_error.extensions, **extensions}
        extensions.setdefault("code", code_for(error))
        error.extensions = extensions


def strip_suggestions(errors: list[GraphQLError]) -> None:
    """Drop graphql-core's "Did you mean ...?" from every message: in production they spell
    out field, argument, type and enum names to whoever guesses near them. (Strawberry's
    own setting only covers unknown fields.)"""
    for error in errors:
        head, found, _rest = error.message.partition(SUGGESTION)
        if found:
            error.message = head.rstrip()


SUGGESTION = " Did you mean "


class ErrorCodes(SchemaExtension):
    """Codes for errors raised during execution, on every transport; in production, without
    suggestions.

    Parse failures leave Strawberry's operation hook early; the HTTP view codes those too.
    """

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        self.hide_suggestions = hide_suggestions

    def on_operation(self) -> Iterator[None]:
        yield
        errors = list(getattr(self.execution_context.result, "errors", None) or [])
        if self.hide_suggestions:
            strip_suggestions(errors)
        add_codes(errors)
