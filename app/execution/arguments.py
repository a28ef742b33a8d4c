"""A field's arguments that do not coerce are the client's mistake, not the server's.

Validation lets a nullable variable stand where the schema wants a non-null value that has a
default (``persona: $g`` with ``$g: String``, for ``persona: String! = ""``): the variable
may be left out, and then the default applies. Sent as an explicit ``null``, it is only
refused at execution, when graphql-core coerces the field's arguments and raises a plain
GraphQLError. That error carries no code and a path, so it was coded and masked as an
INTERNAL_SERVER_ERROR and logged with a traceback. Marked BAD_USER_INPUT here, it keeps
graphql-core's message and location and is reported as what it is, on the planned executor
(app/execution/runner.py) and the stock one (app/execution/context.py) alike.
"""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLError, GraphQLField
from graphql.execution.values import FragmentVariableValues, VariableValues, get_argument_values

from app.errors import ChimeraError, ErrorCode


def argument_values(
    field_def: GraphQLField,
    node: FieldNode,
    variable_values: VariableValues,
    fragment_variable_values: FragmentVariableValues | None,
    hide_suggestions: bool,
) -> dict[str, Any]:
    """graphql-core's coerced arguments of a field, or a BAD_USER_INPUT error saying why
    they do not coerce."""
    try:
        return get_argument_values(
            field_def, node, variable_values, fragment_variable_values, hide_suggestions
        )
    except GraphQLError as error:
        raise client_input_error(error) from error


def client_input_error(error: GraphQLError) -> GraphQLError:
    """``error`` (one graphql-core raised coercing input) with the BAD_USER_INPUT code, unless
    it already has a code, its own or its cause's (a scalar refusing a value says which)."""
    if (error.extensions or {}).get("code") or isinstance(error.original_error, ChimeraError):
        return error
    return GraphQLError(
        error.message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        error.original_error,
        {**(error.extensions or {}), "code": ErrorCode.BAD_USER_INPUT.value},
    )
