"""No input to any field of the schema is an internal error.

Every field that takes arguments, at the root (each query and mutation) or nested (a
campaign's metrics, a media asset's url, an agent's memories...), is sent values drawn from
its arguments' GraphQL types, valid and hostile alike: text of any script, integers past
32 bits, floats past any range and NaN, numerals no parser expects, times at the edges of
the calendar, JSON of any shape, real ids of the tenant and forged ones, nulls where a value
is required, a value of the wrong kind. Whatever the API makes of them, the answer is a
JSON GraphQL response whose errors are the public codes a client can act on: never a 500,
never INTERNAL_SERVER_ERROR, never a traceback. The targets and the values come from
tests/api/schema_fuzzing.py, which reads schema.graphql: a field added tomorrow is fuzzed
without a line here.

The examples are derandomized (the same in every run, so CI is reproducible); set
CHIMERA_FUZZ_EXAMPLES to draw more of them, randomly, on a machine of your own.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import pytest_asyncio
from httpx import AsyncClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role
from tests.api import raw_ws
from tests.api.schema_fuzzing import (
    EXPECTED_CODES,
    FUZZ,
    RUNTIME_FIELDS,
    SCHEMA,
    TARGETS,
    Fuzzed,
    Target,
    Values,
    document,
    seed_tenant,
)
from tests.support import error_codes


@pytest_asyncio.fixture(scope="module")
async def fuzzed(app: Starlette, engine: AsyncEngine, http: AsyncClient) -> Fuzzed:
    return await seed_tenant(app, engine, http)


def test_every_field_with_arguments_is_a_target() -> None:
    """The walk reaches the nested fields clients use most, not only the root."""
    names = {str(t) for t in TARGETS}
    assert {
        "Mutation.createCampaign",
        "Query.campaigns",
        "Campaign.metrics",
        "Campaign.similar",
        "MediaAsset.url",
        "Agent.memories",
    } <= names, sorted(names)


@pytest.mark.parametrize("target", TARGETS, ids=str)
@FUZZ
@given(data=st.data())
async def test_no_input_to_any_field_is_an_internal_error(
    fuzzed: Fuzzed, target: Target, data: st.DataObject
) -> None:
    # Calm (every leaf as a client means it), one leaf or so hostile, or chaos.
    values = Values(fuzzed.real_ids, hostile=data.draw(st.sampled_from([0, 10, 50])))
    variables = {
        f"v{i}": data.draw(values.of(arg.type, (name, target.name)), label=name)
        for i, (name, arg) in enumerate(target.field.args.items())
    }
    # Mostly an admin, who may do anything; a runtime (an agent's token) for its own fields.
    roles = [Role.AGENT] * 6 if target.name in RUNTIME_FIELDS else [Role.ADMIN] * 6
    role = data.draw(st.sampled_from([*roles, Role.ADMIN, Role.EDITOR, Role.VIEWER, Role.AGENT]))
    token = (
        fuzzed.tenant.agent_token(fuzzed.agent_pk)
        if role is Role.AGENT
        else fuzzed.tenant.token(role)
    )
    # Python's json, as a Python client sends it: NaN and Infinity as the tokens JSON lacks.
    payload = json.dumps({"query": document(target), "variables": variables})
    response = await fuzzed.tenant.http.post(
        "/graphql",
        content=payload,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status_code < 500, (response.status_code, response.text[:2000])
    assert "Traceback" not in response.text and 'File "' not in response.text, response.text
    body = response.json()
    assert isinstance(body, dict), body
    unexpected = set(error_codes(body)) - EXPECTED_CODES
    assert not unexpected, (document(target), _shown(variables), body)


assert SCHEMA.subscription_type is not None
SUBSCRIPTIONS = [
    Target("subscription", (), SCHEMA.subscription_type.name, name)
    for name, field in SCHEMA.subscription_type.fields.items()
    if field.args
]
# How long an example waits for the server's first word before it ends the subscription: an
# input the API refuses is answered at once, one it takes is a stream that waits for events.
FIRST_WORD_SECONDS = 0.3


@pytest.mark.parametrize("target", SUBSCRIPTIONS, ids=str)
@FUZZ
@given(data=st.data())
async def test_no_input_to_a_subscription_is_an_internal_error(
    fuzzed: Fuzzed, live_url: str, target: Target, data: st.DataObject
) -> None:
    """The same over graphql-transport-ws, each example a subscription of its own on one
    socket: whatever comes back (a refusal, replayed events, nothing yet) names no internal
    error, and the socket stays open."""
    values = Values(fuzzed.real_ids, hostile=data.draw(st.sampled_from([0, 10, 50])))
    variables = {
        f"v{i}": data.draw(values.of(arg.type, (name, target.name)), label=name)
        for i, (name, arg) in enumerate(target.field.args.items())
    }
    socket = await raw_ws.open_socket(live_url, fuzzed.tenant.token(Role.ADMIN))
    try:
        await raw_ws.send(
            socket,
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": document(target), "variables": variables},
            },
        )
        messages = []
        try:
            async with asyncio.timeout(FIRST_WORD_SECONDS):
                while True:
                    message = await raw_ws.receive(socket)
                    messages.append(message)
                    if message.get("type") in ("error", "complete"):
                        break
        except TimeoutError:
            await raw_ws.complete(socket, "1")
        for message in messages:
            payload = message.get("payload")
            errors = (
                payload if message.get("type") == "error" else (payload or {}).get("errors", [])
            )
            codes = {(e.get("extensions") or {}).get("code") for e in errors or []}
            unexpected = codes - EXPECTED_CODES
            assert not unexpected, (document(target), _shown(variables), message)
        # The socket survived the example: it still answers a ping.
        await raw_ws.send(socket, {"type": "ping"})
        async with asyncio.timeout(10):
            while (await raw_ws.receive(socket)).get("type") != "pong":
                pass
    finally:
        await socket.close()


def _shown(variables: dict[str, Any]) -> str:
    """The variables for a failure's message, long texts cut short."""
    text = repr(variables)
    return text if len(text) < 2000 else text[:2000] + "..."
