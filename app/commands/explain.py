"""`chimera explain FILE.graphql --tenant SLUG`: a query's store plan, from the command line.

The document runs through the real app, in this process (its lifespan, its extensions, its
loaders against the configured stores), as the tenant's admin, with the plan asked for, as
``X-Chimera-Plan`` asks over HTTP; so what it prints is what a request would do. Only
queries: a mutation would write for real.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

from app.auth import Role, mint_token
from app.commands.tenants import tenant_by_slug
from app.response_media import is_request_error
from app.settings import Settings


class ExplainError(Exception):
    """Why a document cannot be explained, in one line."""


@dataclass
class Explained:
    plan: dict[str, Any]
    errors: list[dict[str, Any]]
    cost: dict[str, Any] | None


def check_query(document: str, operation: str | None) -> None:
    """Refuse what is not one query: explain runs it for real."""
    try:
        parsed = parse(document)
    except GraphQLError as exc:
        raise ExplainError(f"the document does not parse: {exc.message}") from exc
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if operation is not None:
        operations = [d for d in operations if d.name is not None and d.name.value == operation]
    if len(operations) != 1:
        raise ExplainError(
            f"no operation named {operation!r} in the document"
            if operation is not None
            else "the document holds several operations: name one with --operation"
        )
    if operations[0].operation is not OperationType.QUERY:
        raise ExplainError(
            f"only queries are explained; this is a {operations[0].operation.value} "
            "and would run for real"
        )


async def explain(
    settings: Settings,
    document: str,
    tenant: str,
    variables: dict[str, Any] | None = None,
    operation: str | None = None,
) -> Explained:
    from app.main import create_app

    check_query(document, operation)
    quiet = settings.model_copy(
        update={
            "relay_enabled": False,
            "indexer_enabled": False,
            "media_sweep_seconds": 0,
            "access_log": False,
        }
    )
    app = create_app(quiet)
    async with app.router.lifespan_context(app):
        row = await tenant_by_slug(app.state.stores.engine, tenant)
        if row is None:
            raise ExplainError(f"no tenant {tenant!r}; create it with `chimera tenant create`")
        token = mint_token(
            app.state.auth_secret,
            tenant_id=row.id,
            tenant_slug=row.slug,
            role=Role.ADMIN,
            subject="chimera explain",
            ttl_seconds=300,
        )
        # Its line per request would stand between the user and the plan.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chimera") as http:
            response = await http.post(
                "/graphql",
                json={"query": document, "variables": variables or {}, "operationName": operation},
                headers={"Authorization": f"Bearer {token}", "X-Chimera-Plan": "1"},
            )
    body: dict[str, Any] = response.json()
    extensions = body.get("extensions") or {}
    if "plan" not in extensions or is_request_error(body):
        # A document that does not validate (an unknown field, an undefined variable) or
        # variables that do not fit it never ran: its plan is empty, and printing it would
        # read as a query that made no store call. It is refused like a parse error.
        errors = body.get("errors") or [{"message": f"HTTP {response.status_code}"}]
        messages = " ".join(str(error.get("message")) for error in errors)
        raise ExplainError(f"the query did not run: {messages}")
    return Explained(extensions["plan"], body.get("errors") or [], extensions.get("cost"))


def render(explained: Explained) -> str:
    """The plan as a table, then the totals by store, the cost and any errors."""
    plan = explained.plan
    header = ("#", "store", "loader", "keys", "returned", "served", "start ms", "ms")
    rows = [
        (
            str(i),
            step["store"],
            step["loader"] + (f" ({step['error']})" if step.get("error") else ""),
            str(step["keys"]),
            str(step["returned"]),
            str(step["servedCalls"]),
            f"{step['startedMs']:.1f}",
            f"{step['durationMs']:.1f}",
        )
        for i, step in enumerate(plan["steps"], start=1)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = {0, 3, 4, 5, 6, 7}

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()

    out = [line(header), *(line(row) for row in rows)]
    by_store = ", ".join(
        f"{store} {total['calls']} ({total['durationMs']:.1f} ms)"
        for store, total in plan["byStore"].items()
    )
    out.append(f"{plan['storeCalls']} store calls: {by_store or 'none'}")
    if explained.cost is not None:
        out.append(
            f"cost: requested {explained.cost.get('requested')}, "
            f"actual {explained.cost.get('actual')}"
        )
    for error in explained.errors:
        out.append(f"error: {error.get('message')} {json.dumps(error.get('path') or [])}")
    return "\n".join(out)
