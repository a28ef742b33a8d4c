"""Fuzzing the schema: its fields with arguments, and values for every input type.

tests/api/test_schema_fuzz.py sends them to find internal errors, tests/api/
test_isolation_fuzz.py sends another tenant's ids through them. The targets are read from
schema.graphql, so a field added tomorrow is fuzzed without a line here. Values are drawn
leaf by leaf: what a client that means well sends (with a tenant's real ids, of the type
each input names), or, some times in a hundred, anything at all.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    build_schema,
    get_named_type,
    is_composite_type,
)
from httpx import AsyncClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.errors import ErrorCode
from app.ids import decode_id
from tests.api.dashboard_data import dashboard_tenant
from tests.support import TenantClient

SCHEMA: GraphQLSchema = build_schema(
    (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()
)

# What a client can act on: every code the API has, but INTERNAL_SERVER_ERROR, and
# STORE_UNAVAILABLE (the stores are up, so a store refusing what the API passed it is the
# API's fault).
EXPECTED_CODES = {code.value for code in ErrorCode} - {
    ErrorCode.INTERNAL_SERVER_ERROR.value,
    ErrorCode.STORE_UNAVAILABLE.value,
}

EXAMPLES = int(os.environ.get("CHIMERA_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(
    max_examples=EXAMPLES or 25,
    derandomize=EXAMPLES is None,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ------------------------------------------------------------------------------------------
# The targets: every field with arguments, and a path of argument-free fields to reach it


@dataclass(frozen=True)
class Target:
    operation: str  # "query" or "mutation"
    path: tuple[str, ...]  # fields from the root to the target's parent object
    parent: str
    name: str

    @property
    def field(self) -> GraphQLField:
        parent = SCHEMA.get_type(self.parent)
        assert isinstance(parent, GraphQLObjectType)
        field: GraphQLField = parent.fields[self.name]
        return field

    def __str__(self) -> str:
        return f"{self.parent}.{self.name}"


def _needs_arguments(field: GraphQLField) -> bool:
    return any(
        isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
        for arg in field.args.values()
    )


def targets() -> Iterator[Target]:
    """Root fields with arguments, then each object type's, reached by the shortest path of
    fields that need none (breadth first from Query)."""
    assert SCHEMA.query_type is not None and SCHEMA.mutation_type is not None
    for root, operation in ((SCHEMA.query_type, "query"), (SCHEMA.mutation_type, "mutation")):
        for name, field in root.fields.items():
            if field.args:
                yield Target(operation, (), root.name, name)
    seen = {SCHEMA.query_type.name}
    queue: deque[tuple[GraphQLObjectType, tuple[str, ...]]] = deque([(SCHEMA.query_type, ())])
    while queue:
        parent, path = queue.popleft()
        for name, field in parent.fields.items():
            child = get_named_type(field.type)
            if not isinstance(child, GraphQLObjectType) or _needs_arguments(field):
                continue
            if child.name in seen:
                continue
            seen.add(child.name)
            reached = (*path, name)
            for child_name, child_field in child.fields.items():
                if child_field.args:
                    yield Target("query", reached, child.name, child_name)
            queue.append((child, reached))


TARGETS = list(targets())


def typename_only(kind: GraphQLNamedType) -> str:
    return "{ __typename }" if is_composite_type(kind) else ""


def document(target: Target, selection: Callable[[GraphQLNamedType], str] = typename_only) -> str:
    """The target with its arguments as variables ``$v0``..., asking ``selection`` of its
    type, reached through its path."""
    field = target.field
    variables = ", ".join(f"$v{i}: {arg.type}" for i, arg in enumerate(field.args.values()))
    arguments = ", ".join(f"{name}: $v{i}" for i, name in enumerate(field.args))
    inner = f"{target.name}({arguments}) {selection(get_named_type(field.type))}".rstrip()
    parent = SCHEMA.query_type
    hops = []
    for hop in target.path:
        assert isinstance(parent, GraphQLObjectType)
        # Two items a list on the way, not the default twenty: the target's own cost (a
        # metrics window, say) is multiplied by every list above it.
        hops.append(f"{hop}(first: 2)" if "first" in parent.fields[hop].args else hop)
        parent = get_named_type(parent.fields[hop].type)
    for hop in reversed(hops):
        inner = f"{hop} {{ {inner} }}"
    return f"{target.operation} Fuzz({variables}) {{ {inner} }}"


# ------------------------------------------------------------------------------------------
# Values of every input type, valid and hostile


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each as often as its weight says (st.one_of draws its branches
    alike, and shrinks towards the first)."""
    slots = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(slots) - 1).flatmap(lambda n: slots[n])


# Text a client means (a name, a kind, a key), text of any script, and text made to hurt.
WORDS = st.from_regex(r"[a-z][a-z0-9._-]{0,15}", fullmatch=True)
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\nb",
        "٣",
        "\uff11\uff12",  # fullwidth digits
        "1_000",
        "NaN",
        "-Infinity",
        "1e999999999",
        "9" * 5000,
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2026-01-01T00:00:00",
        "../../etc/passwd",
        "' OR 1=1 --",
        "{{}}",
        "x" * 70_000,
    ]
)
TEXT = weighted((5, WORDS), (3, ANY_TEXT), (2, HOSTILE_TEXT))
INTS = weighted(
    (7, st.integers(min_value=-5, max_value=120)),
    (3, st.sampled_from([0, -1, 2**31 - 1, -(2**31), 2**31, 2**63, -(2**63) - 1, 10**30])),
)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),  # NaN and Infinity: Python's json writes them
    st.sampled_from([0.0, -0.0, 1e308, 5e-324, 0.1]),
)
TIMES = weighted(
    (4, st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat())),
    (
        4,
        st.sampled_from(
            [
                "2026-06-01T00:00:00Z",
                "0001-01-01T00:00:00+14:00",
                "9999-12-31T23:59:59-14:00",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999Z",
                "2026-02-30T00:00:00Z",
                "yesterday",
            ]
        ),
    ),
    (2, TEXT),
)
NUMERALS = weighted(
    (3, st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str)),
    (3, st.decimals(allow_nan=True, allow_infinity=True).map(str)),
    (
        3,
        st.sampled_from(
            ["1.50", "10", "1e3", "1e999999999", "-1e999999999", "1e-999999999", "NaN", "٣"]
        ),
    ),
    (1, st.one_of(INTS, TEXT)),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTS | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


# Node types, longest first: the one an input's name or an argument's name mentions is the
# type its ids are meant to be of ("campaignId", "CompleteMediaUploadInput.id").
TYPE_NAMES = ["AgentMemory", "MediaAsset", "Transaction", "Campaign", "ApiKey", "Agent", "Task"]
ALIASES = {"Media": "MediaAsset", "Upload": "MediaAsset"}


def meant_type(*names: str) -> str | None:
    for name in names:
        lowered = name.lower()
        for type_name in [*TYPE_NAMES, *ALIASES]:
            if type_name.lower() in lowered:
                return ALIASES.get(type_name, type_name)
    return None


# What a client that means well sends, leaf by leaf: the examples that reach the resolvers
# and the stores, and the baseline that a single hostile leaf is set into.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "String": WORDS,
    "Int": st.integers(min_value=1, max_value=50),
    "Float": st.floats(min_value=-1, max_value=1),
    "Boolean": st.booleans(),
    "DateTime": st.sampled_from(
        ["2026-06-01T00:00:00Z", "2026-06-02T12:30:00+02:00", "2027-01-01T00:00:00Z"]
    ),
    "Decimal": st.sampled_from(["1.50", "10", "0.01", "250"]),
    "JSON": st.dictionaries(WORDS, st.one_of(WORDS, st.integers(0, 9)), max_size=3),
}
# Event ids (Redis stream ids) as a resuming client sends them, at the edges of what
# Redis takes: the parts are 64-bit.
STREAM_IDS = st.one_of(
    st.builds(
        lambda ms, seq: f"{ms}-{seq}",
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1),
    ),
    st.sampled_from(
        ["0-0", "1-1", "18446744073709551615-18446744073709551615", "99999999999999999999-0"]
    ),
)
# Where a word will not do: text a field means as something in particular.
PLAUSIBLE_BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "idempotencyKey": st.uuids().map(lambda u: u.hex),  # a key used twice is another case
    "currency": st.sampled_from(["USD", "EUR", "JPY"]),
    "timeZone": st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata", "Pacific/Kiritimati"]),
    "contentType": st.sampled_from(["image/png", "image/jpeg", "video/mp4"]),
    "filename": st.sampled_from(["a.png", "campaign video.mp4"]),
}
HOSTILE: dict[str, st.SearchStrategy[Any]] = {
    "String": TEXT,
    "Int": INTS,
    "Float": FLOATS,
    "Boolean": st.booleans(),
    "DateTime": TIMES,
    "Decimal": NUMERALS,
    "JSON": JSON_VALUES,
}
ODD = st.one_of(st.none(), st.sampled_from([7, "x", [], {}, True]))


@dataclass
class Values:
    """Strategies for the values of input types: each leaf (a scalar, an enum, an id) is
    what a client that means well sends, or, ``hostile`` times in a hundred, anything at
    all (text of any script, numbers past any range, nulls, values of another kind). Ids
    are the tenant's own, mostly of the type the input is meant to hold."""

    real_ids: dict[str, list[str]]
    hostile: int  # in a hundred leaves

    def of(self, kind: GraphQLInputType, hint: tuple[str, ...], depth: int = 0) -> Any:
        """``hint`` names where the value goes: the argument or input field, then the
        input type or field around it."""
        inner = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
        if isinstance(inner, GraphQLList):
            item = self.of(inner.of_type, hint, depth + 1)
            lists = weighted(
                (8, st.lists(item, max_size=4)),
                (1, item),  # one value where a list goes: GraphQL makes it a list of one
                (1, st.lists(item, min_size=60, max_size=120)),
            )
            return self._leaf(st.lists(item, min_size=1, max_size=3), lists)
        if isinstance(inner, GraphQLInputObjectType):
            fields = {
                name: self.of(f.type, (name, inner.name, *hint), depth + 1)
                for name, f in inner.fields.items()
            }
            fields.update(OVERRIDES.get(inner.name, {}))
            required = {
                name: strategy
                for name, strategy in fields.items()
                if isinstance(inner.fields[name].type, GraphQLNonNull)
                and inner.fields[name].default_value is Undefined
            }
            optional = {name: s for name, s in fields.items() if name not in required}
            whole = st.fixed_dictionaries(required, optional=optional)
            return self._leaf(whole, ODD) if depth < 3 else whole
        if isinstance(inner, GraphQLEnumType):
            valid = st.sampled_from(list(inner.values))
            return self._leaf(valid, st.one_of(TEXT, ODD))
        assert isinstance(inner, GraphQLScalarType), inner
        if inner.name == "ID":
            return self._leaf(self._ids(meant_type(*hint)), st.one_of(self._forged(), ODD))
        if hint[0] == "after":  # a page's cursor, or an event's id to resume from
            cursors = st.sampled_from(self.real_ids["cursor"])
            plausible = st.one_of(cursors, STREAM_IDS)
        elif hint[0] in PLAUSIBLE_BY_NAME:
            plausible = PLAUSIBLE_BY_NAME[hint[0]]
        else:
            plausible = PLAUSIBLE.get(inner.name, WORDS)
        return self._leaf(plausible, st.one_of(HOSTILE.get(inner.name, TEXT), ODD))

    def _leaf(
        self, plausible: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]
    ) -> st.SearchStrategy[Any]:
        if self.hostile == 0:
            return plausible
        return weighted((100 - self.hostile, plausible), (self.hostile, hostile))

    def _ids(self, meant: str | None) -> st.SearchStrategy[str]:
        every = [i for kind, ids in self.real_ids.items() if kind != "cursor" for i in ids]
        mine = self.real_ids.get(meant or "", []) or every
        return weighted((9, st.sampled_from(mine)), (1, st.sampled_from(every)))

    def _forged(self) -> st.SearchStrategy[str]:
        forged = st.builds(
            lambda kind, pk: b64(f"{kind}:{pk}"),
            st.sampled_from([*TYPE_NAMES, "", "agent"]),
            st.one_of(st.uuids().map(str), TEXT),
        )
        return st.one_of(forged, TEXT)


# Mutations only an agent's runtime may call.
RUNTIME_FIELDS = {"claimTasks", "heartbeatTask", "completeTask", "failTask"}

# Inputs that would only make the run slow, not find anything: a claim that waits for work.
OVERRIDES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "ClaimTasksInput": {"waitSeconds": st.just(0)},
}


# ------------------------------------------------------------------------------------------
# The tenant every example runs in


@dataclass
class Fuzzed:
    tenant: TenantClient
    agent_pk: uuid.UUID
    real_ids: dict[str, list[str]]  # by type (Campaign, Agent...), and "cursor": page cursors


async def seed_tenant(app: Starlette, engine: AsyncEngine, http: AsyncClient) -> Fuzzed:
    """A tenant with campaigns, an agent, engagement, transactions, history, vectors, a
    task and a media record: something for each nested field to resolve."""
    tenant = await dashboard_tenant(app, engine, http, campaigns=3)
    found = await tenant.data(
        """{ campaigns(first: 3) { edges { cursor node { id agents(first: 1) { edges { node { id } } }
             transactions(first: 1) { edges { node { id } } } } } } }"""
    )
    edges = found["campaigns"]["edges"]
    campaign = edges[0]["node"]["id"]
    agent = edges[0]["node"]["agents"]["edges"][0]["node"]["id"]
    task = await tenant.data(
        """mutation($a: ID!) { enqueueTask(input: {agentId: $a, kind: "post",
             idempotencyKey: "fuzz"}) { task { id } } }""",
        {"a": agent},
    )
    media = await tenant.data(
        """mutation($c: ID!) { requestMediaUpload(input: {campaignId: $c, filename: "a.png",
             contentType: "image/png", sizeBytes: 10}) { asset { id } } }""",
        {"c": campaign},
    )
    real = {
        "Campaign": [edge["node"]["id"] for edge in edges],
        "Agent": [agent],
        "Transaction": [t["node"]["id"] for e in edges for t in e["node"]["transactions"]["edges"]],
        "Task": [task["enqueueTask"]["task"]["id"]],
        "MediaAsset": [media["requestMediaUpload"]["asset"]["id"]],
        "cursor": [edge["cursor"] for edge in edges],  # pages of campaigns (in another order: bad)
    }
    return Fuzzed(tenant, decode_id(agent, "Agent"), real)
