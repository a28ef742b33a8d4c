"""What search texts may cost the model: a bound per request and a budget per tenant, counted
in the word pieces the model runs, refused with OPERATION_LIMIT before any of it runs."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from starlette.applications import Starlette

from app.auth import Role
from app.settings import Settings
from app.stores.embeddings.budget import EmbedLimits
from app.stores.embeddings.minilm import MiniLMEmbedder
from tests.heavy_search import ALIASES, HEAVY, LONG_TEXTS, SMALL, the_model
from tests.support import TenantClient, error_codes

TWO = (
    "query($a: String!, $b: String!) { a: semanticSearch(query: $a) { score } "
    "b: semanticSearch(query: $b) { score } }"
)


def limits_of(body: dict[str, Any]) -> set[str]:
    return {e["extensions"]["limit"] for e in body.get("errors") or []}


class ForwardPasses:
    """Counts the model's forward passes."""

    def __init__(self, embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.lock = threading.Lock()
        original = embedder._encode

        def counting(*args: Any) -> Any:
            with self.lock:
                self.count += 1
            return original(*args)

        monkeypatch.setattr(embedder, "_encode", counting)


def test_the_limits_are_the_settings(app: Starlette, settings: Settings) -> None:
    assert the_model(app).limits == EmbedLimits(
        settings.max_embed_tokens_per_request, settings.embed_tokens_per_tenant_per_minute
    )


async def test_thirty_long_queries_in_one_request_are_refused_before_any_embedding(
    tenant: TenantClient, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's request: inside every other limit, 30 x 256 = 7,680 tokens of model work."""
    passes = ForwardPasses(the_model(app), monkeypatch)
    body = await tenant.gql(HEAVY, LONG_TEXTS, role=Role.VIEWER)
    # semanticSearch is non-null, so the first refusal nulls the data and is the one error.
    assert error_codes(body) == ["OPERATION_LIMIT"], body
    extensions = body["errors"][0]["extensions"]
    assert extensions["limit"] == "embedTokensPerRequest"
    assert extensions["requested"] == ALIASES * 256
    assert extensions["allowed"] == 2048
    assert "at most 2048 tokens" in body["errors"][0]["message"]
    assert passes.count == 0
    # Nothing was charged: the same tenant's ordinary search still works.
    assert await tenant.data(SMALL, {"q": "summer sneaker launch"}) == {"semanticSearch": []}


async def test_a_long_query_costs_its_256_word_pieces_however_long_the_text(
    tenant: TenantClient, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(the_model(app), "limits", EmbedLimits(300, 10_000))
    long_a, long_b, long_c = list(LONG_TEXTS.values())[:3]
    # A text of 1,000 characters is cut to the model's 256 word pieces: within 300.
    assert not (await tenant.gql(SMALL, {"q": long_a})).get("errors")
    # Two new ones are 512: refused, both.
    body = await tenant.gql(TWO, {"a": long_b, "b": long_c})
    assert error_codes(body) == ["OPERATION_LIMIT"], body
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["requested"] == 512
    # One searched before is not embedded again (the shared cache), so it costs nothing.
    assert not (await tenant.gql(TWO, {"a": long_a, "b": long_b})).get("errors")
    # 1,000 characters that are one word cost [CLS] [UNK] [SEP]: length is not the cost.
    assert not (await tenant.gql(TWO, {"a": long_c, "b": "x" * 1000})).get("errors")


async def test_a_tenant_over_its_minute_budget_is_refused_and_another_tenant_is_not(
    tenant: TenantClient,
    other_tenant: TenantClient,
    app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(the_model(app), "limits", EmbedLimits(300, 300))
    long_a, long_b = list(LONG_TEXTS.values())[:2]
    assert not (await tenant.gql(SMALL, {"q": long_a})).get("errors")
    # 44 tokens left, refilled at 5 a second: another 256 do not fit for half a minute.
    body = await tenant.gql(SMALL, {"q": long_b})
    assert error_codes(body) == ["OPERATION_LIMIT"], body
    extensions = body["errors"][0]["extensions"]
    assert extensions["limit"] == "embedTokensPerTenantPerMinute"
    assert extensions["retryAfterSeconds"] >= 5
    # A short query still fits, and another tenant has a budget of its own.
    assert not (await tenant.gql(SMALL, {"q": "coffee"})).get("errors")
    assert not (await other_tenant.gql(SMALL, {"q": long_b})).get("errors")


async def test_agent_memory_queries_are_bounded_the_same_way(
    tenant: TenantClient, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(the_model(app), "limits", EmbedLimits(600, 10_000))
    created = await tenant.data('mutation { createAgent(input: {name: "Mnemo"}) { agent { id } } }')
    agent_id = created["createAgent"]["agent"]["id"]
    memories = " ".join(f"m{i}: memories(query: $q{i}) {{ score }}" for i in range(3))
    body = await tenant.gql(
        f"query($id: ID!, $q0: String, $q1: String, $q2: String) {{ agent(id: $id) {{ {memories} }} }}",
        {"id": agent_id, **{f"q{i}": text for i, text in enumerate(list(LONG_TEXTS.values())[:3])}},
    )
    assert "OPERATION_LIMIT" in error_codes(body), body
    assert limits_of(body) == {"embedTokensPerRequest"}
