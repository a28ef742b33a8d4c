"""Operation prices: the README's queries pinned, and the rules that make them (lists sized by
their slicing arguments, fragments, conditions, abstract types), before and after execution."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    parse,
)

from app.cost.directives import ListSize, Store
from app.cost.model import DEFINITION, Price, operation_cost
from app.schema import build_schema
from app.settings import Settings


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    built: GraphQLSchema = build_schema(Settings())._schema
    return built


def price(schema: GraphQLSchema, query: str, variables: dict[str, Any] | None = None) -> Price:
    cost = operation_cost(schema, parse(query), query, None)
    assert cost is not None
    return cost.requested(variables)


README = {
    "dashboard": (
        "{ campaigns(first: 5) { totalCount edges { node { name status budget "
        "agents { edges { node { name } } } } } } }",
        # connection 1 + count 1 + 5 x (edge 1 + campaign 1 + agents 1 + 20 x (edge + agent))
        217,
        {"POSTGRES": 217},
    ),
    "recordTransaction": (
        'mutation { recordTransaction(input: {campaignId: "x", kind: SPEND, amount: "120.50", '
        'idempotencyKey: "invoice-2291", description: "Boosted post"}) { '
        "transaction { id amount currency campaign { spent remainingBudget } } } }",
        12,  # the write 10, its transaction and campaign rows
        {"POSTGRES": 12},
    ),
    "semanticSearch": (
        '{ semanticSearch(query: "summer sneaker launch", types: [CAMPAIGN, AGENT], limit: 5) '
        "{ score node { ... on Campaign { name } ... on Agent { name } } } }",
        # the text embedded 10, the search 20, 5 hits, each hydrated from a row
        40,
        {"EMBEDDING": 10, "VECTOR": 25, "POSTGRES": 5},
    ),
    "campaignStats": (
        "{ campaignStats { total byStatus { status count } totalSpent { amount currency } "
        "engagement { clicks } } }",
        21,
        {"POSTGRES": 20, "REDIS": 1},
    ),
    "metrics": (
        '{ campaign(id: "x") { metrics(from: "2026-12-01T00:00:00Z", to: "2026-12-02T00:00:00Z", '
        'bucket: HOUR, timeZone: "Europe/Paris") { at clicks spend } } }',
        27,  # the campaign 1, the aggregate 2, 24 hourly points
        {"POSTGRES": 27},
    ),
    "enqueueTask": (
        'mutation { enqueueTask(input: {agentId: "x", kind: "caption.write", '
        'payload: {tone: "warm"}, idempotencyKey: "brief-88"}) { task { id status } } }',
        11,
        {"REDIS": 11},
    ),
    "claimTasks": (
        "mutation { claimTasks(input: {max: 5, leaseSeconds: 60, waitSeconds: 20}) { "
        "leases { leaseToken expiresAt task { id kind payload attempts } } } }",
        20,  # the claim 10, 5 leases and their tasks
        {"REDIS": 20},
    ),
    "campaignEvents": (
        "subscription { campaignEvents { id type occurredAt campaign { name status } } }",
        2,
        {"COMPUTE": 1, "POSTGRES": 1},
    ),
}


@pytest.mark.parametrize("name", README)
def test_the_readme_queries_cost_what_is_pinned_here(schema: GraphQLSchema, name: str) -> None:
    query, total, by_store = README[name]
    found = price(schema, query)
    assert (found.total, found.as_dict()) == (total, by_store)


def test_the_full_dashboard_query_is_priced_by_every_store_it_touches(
    schema: GraphQLSchema,
) -> None:
    from bench.dashboard_queries import QUERY_C

    found = price(schema, QUERY_C, {"first": 50})
    # Per campaign: 2 rows, 1 counter hash, 5 agents with their task counts, 4 media with
    # their URLs, one vector search (10) and its 3 hits.
    assert found.as_dict() == {
        "POSTGRES": 1252,
        "REDIS": 300,
        "VECTOR": 650,
        "OBJECT_STORAGE": 200,
    }


def test_a_page_is_priced_by_its_first_capped_by_the_fields_maximum(
    schema: GraphQLSchema,
) -> None:
    query = "query($n: Int) { campaigns(first: $n) { edges { node { id } } } }"
    assert price(schema, query, {"n": 3}).total == 1 + 3 * 2
    assert price(schema, query, {}).total == 1 + 20 * 2  # the argument's default
    assert price(schema, query, {"n": 1_000_000}).total == 1 + 100 * 2  # refused beyond 100
    assert price(schema, query, {"n": -5}).total == 1


def test_aliases_are_priced_apart_and_a_key_selected_twice_once(schema: GraphQLSchema) -> None:
    aliased = """{ a: campaigns(first: 2) { ...Ids } b: campaigns(first: 3) { ...Ids } }
        fragment Ids on CampaignConnection { edges { node { id } } }"""
    assert price(schema, aliased).total == (1 + 2 * 2) + (1 + 3 * 2)
    merged = "{ campaigns(first: 2) { edges { node { id } } } campaigns(first: 2) { totalCount } }"
    assert price(schema, merged).total == 1 + 2 * 2 + 1


def test_skip_and_include_leave_out_what_the_request_leaves_out(schema: GraphQLSchema) -> None:
    query = """query($skip: Boolean!) { campaigns(first: 10) { totalCount
        edges @skip(if: $skip) { node { id } } } viewer @include(if: false) { role } }"""
    assert price(schema, query, {"skip": True}).total == 2
    assert price(schema, query, {"skip": False}).total == 2 + 10 * 2


def test_an_abstract_field_prices_each_element_as_the_dearest_type_it_may_be(
    schema: GraphQLSchema,
) -> None:
    query = """{ nodes(ids: ["a", "b"]) { id ... on Campaign { engagement { clicks } }
        ... on Agent { activeTasks queuedTasks } } }"""
    found = price(schema, query)
    # Two elements; an Agent (its row, two task counts) is dearer than a Campaign (its row,
    # one counter hash).
    assert found.as_dict() == {"POSTGRES": 2, "REDIS": 4}


def test_a_slicing_argument_inside_an_input_object_sizes_the_list_it_names(
    schema: GraphQLSchema,
) -> None:
    query = """mutation($input: ClaimTasksInput!) { claimTasks(input: $input) {
        leases { task { id } } } }"""
    assert price(schema, query, {"input": {"max": 7}}).total == 10 + 7 * 2
    assert price(schema, query, {"input": {}}).total == 10 + 1 * 2  # max defaults to 1


def test_a_metric_range_is_priced_by_the_buckets_it_holds(schema: GraphQLSchema) -> None:
    query = """query($from: DateTime!, $to: DateTime!, $bucket: MetricBucket!) {
        campaign(id: "x") { metrics(from: $from, to: $to, bucket: $bucket) { at } } }"""
    week = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-08T00:00:00Z"}
    assert price(schema, query, {**week, "bucket": "DAY"}).total == 1 + 2 + 7
    assert price(schema, query, {**week, "bucket": "HOUR"}).total == 1 + 2 + 168
    unreadable = {"from": "yesterday", "to": "today", "bucket": "DAY"}
    assert price(schema, query, unreadable).total == 1 + 2 + 1000  # the field's cap


def test_an_argument_with_a_cost_is_charged_only_when_given(schema: GraphQLSchema) -> None:
    query = "query($q: String, $v: [Float!]) { semanticSearch(query: $q, vector: $v, limit: 1) { score } }"
    by_text = price(schema, query, {"q": "sneakers"}).as_dict()
    by_vector = price(schema, query, {"v": [0.1] * 384}).as_dict()
    assert by_text.get("EMBEDDING") == 10
    assert "EMBEDDING" not in by_vector


def test_introspection_costs_nothing(schema: GraphQLSchema) -> None:
    assert price(schema, "{ __schema { types { fields { args { name } } } } }").total == 0


def test_the_actual_cost_counts_what_came_back(schema: GraphQLSchema) -> None:
    query = """{ campaigns(first: 50) { edges { node { id url: media(first: 4) {
        edges { node { url } } } similar(limit: 3) { campaign { id } } } } } }"""
    cost = operation_cost(schema, parse(query), query, None)
    assert cost is not None
    data = {
        "campaigns": {
            "edges": [
                {
                    "node": {
                        "id": "1",
                        "url": {"edges": [{"node": {"url": "u"}}, {"node": {"url": None}}]},
                        "similar": [{"campaign": {"id": "2"}}],
                    }
                },
                {"node": {"id": "2", "url": {"edges": []}, "similar": []}},
            ]
        }
    }
    actual = cost.actual(data)
    # POSTGRES: the connection, 2 edges, 2 campaigns, 2 media connections, 2 media edges,
    # 2 assets, 1 similar campaign. VECTOR: 2 searches (10 each) and their 1 hit.
    assert actual.as_dict() == {"POSTGRES": 12, "VECTOR": 21, "OBJECT_STORAGE": 1}
    assert cost.actual(None).total == 0


def _directive(definition: object, cls: type) -> Any:
    return next(
        (d for d in getattr(definition, "directives", ()) or () if isinstance(d, cls)), None
    )


def test_every_list_of_objects_says_how_long_it_may_be(schema: GraphQLSchema) -> None:
    """A list without @listSize is priced at 100 elements: a small list is then overpriced,
    a large one possibly under. Only a connection's edges take their size from the field
    that made the connection."""
    unsized = []
    for gtype in schema.type_map.values():
        if not isinstance(gtype, GraphQLObjectType) or gtype.name.startswith("__"):
            continue
        for name, field in gtype.fields.items():
            nullable = get_nullable_type(field.type)
            if not isinstance(nullable, GraphQLList) or not is_composite_type(
                get_named_type(field.type)
            ):
                continue
            if gtype.name.endswith("Connection") and name == "edges":
                continue
            if _directive(field.extensions.get(DEFINITION), ListSize) is None:
                unsized.append(f"{gtype.name}.{name}")
    assert unsized == []


def test_every_type_read_from_a_store_names_it(schema: GraphQLSchema) -> None:
    nameless = [
        gtype.name
        for gtype in schema.type_map.values()
        if isinstance(gtype, GraphQLObjectType)
        and hasattr(getattr(gtype.extensions.get(DEFINITION), "origin", None), "from_row")
        and _directive(gtype.extensions.get(DEFINITION), Store) is None
    ]
    assert nameless == []
