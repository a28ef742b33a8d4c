"""The ledger: money against a campaign's budget, never overspent, recorded exactly once."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.auth import Principal, Role
from app.commands.ledger import TransactionInput, record_transaction
from app.errors import BudgetExceeded
from app.ids import decode_id
from app.stores.postgres.tables import audit_log, ledger_transaction, outbox
from tests.support import TenantClient, count_statements, error_codes

CREATE = """
mutation($name: String!, $budget: Decimal!, $currency: String! = "USD") {
  createCampaign(input: {name: $name, budget: $budget, currency: $currency}) {
    campaign { id currency budget spent remainingBudget }
  }
}
"""
CREATE_AGENT = 'mutation { createAgent(input: {name: "Spender"}) { agent { id } } }'
RECORD = """
mutation($campaign: ID!, $kind: TransactionKind!, $amount: Decimal!, $key: String!,
         $agent: ID, $description: String! = "") {
  recordTransaction(input: {campaignId: $campaign, kind: $kind, amount: $amount,
                            idempotencyKey: $key, agentId: $agent, description: $description}) {
    transaction {
      id kind amount currency description idempotencyKey actor createdAt
      campaign { id spent remainingBudget }
      agent { id }
    }
  }
}
"""
SPENT = "query($id: ID!) { campaign(id: $id) { budget spent remainingBudget } }"


async def new_campaign(
    tenant: TenantClient, budget: str = "100.00", currency: str = "USD"
) -> dict[str, Any]:
    data = await tenant.data(CREATE, {"name": "Ledgered", "budget": budget, "currency": currency})
    campaign: dict[str, Any] = data["createCampaign"]["campaign"]
    return campaign


async def record(
    tenant: TenantClient,
    campaign_id: str,
    amount: str,
    *,
    kind: str = "SPEND",
    key: str | None = None,
    role: Role = Role.EDITOR,
    **more: Any,
) -> dict[str, Any]:
    variables = {
        "campaign": campaign_id,
        "kind": kind,
        "amount": amount,
        "key": key or uuid.uuid4().hex,
        **more,
    }
    return await tenant.gql(RECORD, variables, role=role)


async def rows_for(engine: AsyncEngine, table: Any, tenant_id: uuid.UUID, **where: Any) -> int:
    query = select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_a_spend_is_recorded_with_its_audit_row_and_campaign_event(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign = await new_campaign(tenant)
    assert (campaign["currency"], campaign["spent"], campaign["remainingBudget"]) == (
        "USD",
        "0.00",
        "100.00",
    )
    agent_id = (await tenant.data(CREATE_AGENT))["createAgent"]["agent"]["id"]
    body = await record(tenant, campaign["id"], "12.5", agent=agent_id, description="Boosted post")
    assert not body.get("errors"), body
    tx = body["data"]["recordTransaction"]["transaction"]
    assert tx["kind"] == "SPEND" and tx["amount"] == "12.50" and tx["currency"] == "USD"
    assert tx["description"] == "Boosted post" and tx["actor"] == "test-editor"
    assert tx["agent"] == {"id": agent_id}
    assert tx["campaign"] == {"id": campaign["id"], "spent": "12.50", "remainingBudget": "87.50"}
    pk = decode_id(tx["id"], "Transaction")
    assert await rows_for(engine, audit_log, tenant.id, entity_id=pk) == 1
    events = await rows_for(
        engine,
        outbox,
        tenant.id,
        event_type="SPEND",
        aggregate_id=decode_id(campaign["id"], "Campaign"),
    )
    assert events == 1
    node = await tenant.data(
        "query($id: ID!) { node(id: $id) { ... on Transaction { amount kind } } }", {"id": tx["id"]}
    )
    assert node["node"] == {"amount": "12.50", "kind": "SPEND"}
    agent = await tenant.data(
        "query($id: ID!) { agent(id: $id) { spent { amount currency } } }", {"id": agent_id}
    )
    assert agent["agent"]["spent"] == [{"amount": "12.50", "currency": "USD"}]


async def test_a_retry_with_the_same_key_returns_the_original_and_writes_nothing(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign = await new_campaign(tenant)
    first = await record(tenant, campaign["id"], "10", key="order-1")
    again = await record(tenant, campaign["id"], "10.00", key="order-1")
    assert not first.get("errors") and not again.get("errors"), (first, again)
    original = first["data"]["recordTransaction"]["transaction"]
    retried = again["data"]["recordTransaction"]["transaction"]
    assert retried["id"] == original["id"] and retried["createdAt"] == original["createdAt"]
    assert retried["campaign"]["spent"] == "10.00"
    campaign_pk = decode_id(campaign["id"], "Campaign")
    assert await rows_for(engine, ledger_transaction, tenant.id, campaign_id=campaign_pk) == 1
    assert (
        await rows_for(engine, outbox, tenant.id, event_type="SPEND", aggregate_id=campaign_pk) == 1
    )


async def test_the_same_key_with_another_input_is_refused_and_keys_are_per_tenant(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    campaign = await new_campaign(tenant)
    assert not (await record(tenant, campaign["id"], "10", key="shared-key")).get("errors")
    reused = await record(tenant, campaign["id"], "11", key="shared-key")
    assert error_codes(reused) == ["IDEMPOTENCY_KEY_REUSED"], reused
    as_refund = await record(tenant, campaign["id"], "10", kind="REFUND", key="shared-key")
    assert error_codes(as_refund) == ["IDEMPOTENCY_KEY_REUSED"], as_refund
    theirs = await new_campaign(other_tenant)
    elsewhere = await record(other_tenant, theirs["id"], "11", key="shared-key")
    assert not elsewhere.get("errors"), elsewhere
    assert (await other_tenant.data(SPENT, {"id": theirs["id"]}))["campaign"]["spent"] == "11.00"


async def test_concurrent_retries_of_one_key_make_one_transaction(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign = await new_campaign(tenant)
    bodies = await asyncio.gather(
        *(record(tenant, campaign["id"], "7.25", key="burst-key") for _ in range(20))
    )
    assert all(not b.get("errors") for b in bodies), [b.get("errors") for b in bodies]
    ids = {b["data"]["recordTransaction"]["transaction"]["id"] for b in bodies}
    assert len(ids) == 1
    campaign_pk = decode_id(campaign["id"], "Campaign")
    assert await rows_for(engine, ledger_transaction, tenant.id, campaign_id=campaign_pk) == 1
    assert (
        await rows_for(engine, outbox, tenant.id, event_type="SPEND", aggregate_id=campaign_pk) == 1
    )
    assert (await tenant.data(SPENT, {"id": campaign["id"]}))["campaign"]["spent"] == "7.25"


async def test_200_concurrent_spends_of_twice_the_budget_accept_exactly_the_budget(
    tenant: TenantClient, settings: Any, engine: AsyncEngine
) -> None:
    """Through the command, on an engine of its own with room for every attempt at once, so
    that what is measured is the invariant, not how long a busy machine takes to queue 200
    requests for 20 pooled connections. Spends of 9.99 and 10.01 alternate: 2,000.00 in all
    against a budget of 1,000.00."""
    campaign = await new_campaign(tenant, budget="1000.00")
    campaign_pk = decode_id(campaign["id"], "Campaign")
    amounts = [Decimal("9.99") if i % 2 else Decimal("10.01") for i in range(200)]
    assert sum(amounts) == 2 * Decimal("1000.00")
    principal = Principal(tenant.id, tenant.slug, Role.EDITOR, "concurrency-test")
    roomy = create_async_engine(
        settings.database_url, pool_size=50, max_overflow=0, pool_timeout=120
    )
    try:

        async def spend(i: int, amount: Decimal) -> Decimal | None:
            given = TransactionInput(campaign_pk, None, "SPEND", amount, "", f"spend-{i}")
            try:
                await record_transaction(roomy, principal, given)
            except BudgetExceeded:
                return None
            return amount

        outcomes = await asyncio.gather(*(spend(i, a) for i, a in enumerate(amounts)))
    finally:
        await roomy.dispose()
    accepted = [o for o in outcomes if o is not None]
    total = sum(accepted, Decimal(0))
    refused = [a for a, o in zip(amounts, outcomes, strict=True) if o is None]
    assert total <= Decimal("1000.00")
    # Every refused spend was larger than what remained when it was tried, and what remains
    # only shrinks: so none would fit in what remains now.
    assert refused and Decimal("1000.00") - total < min(refused)
    seen = (await tenant.data(SPENT, {"id": campaign["id"]}))["campaign"]
    assert Decimal(seen["spent"]) == total
    assert Decimal(seen["remainingBudget"]) == Decimal("1000.00") - total
    # Top it up to the cent: the budget is then spent exactly, and nothing more fits.
    remaining = Decimal("1000.00") - total
    if remaining:
        await record_transaction(
            engine,
            principal,
            TransactionInput(campaign_pk, None, "SPEND", remaining, "", "top-up"),
        )
    seen = (await tenant.data(SPENT, {"id": campaign["id"]}))["campaign"]
    assert seen["spent"] == "1000.00" and seen["remainingBudget"] == "0.00"
    with pytest.raises(BudgetExceeded):
        await record_transaction(
            engine,
            principal,
            TransactionInput(campaign_pk, None, "SPEND", Decimal("0.01"), "", "one-cent-more"),
        )


async def test_spending_exactly_the_budget_is_allowed_and_a_cent_more_is_not(
    tenant: TenantClient,
) -> None:
    campaign = await new_campaign(tenant, budget="50.00")
    assert not (await record(tenant, campaign["id"], "49.99")).get("errors")
    over = await record(tenant, campaign["id"], "0.02")
    assert error_codes(over) == ["BUDGET_EXCEEDED"], over
    assert over["errors"][0]["extensions"]["remaining"] == "0.01"
    assert not (await record(tenant, campaign["id"], "0.01")).get("errors")
    seen = await tenant.data(SPENT, {"id": campaign["id"]})
    assert seen["campaign"] == {"budget": "50.00", "spent": "50.00", "remainingBudget": "0.00"}


async def test_a_refund_never_exceeds_what_was_spent(tenant: TenantClient) -> None:
    campaign = await new_campaign(tenant)
    assert not (await record(tenant, campaign["id"], "30")).get("errors")
    too_much = await record(tenant, campaign["id"], "30.01", kind="REFUND")
    assert error_codes(too_much) == ["BUDGET_EXCEEDED"], too_much
    assert not (await record(tenant, campaign["id"], "30", kind="REFUND")).get("errors")
    assert (await tenant.data(SPENT, {"id": campaign["id"]}))["campaign"]["spent"] == "0.00"


async def test_lowering_the_budget_below_what_was_spent_is_refused(tenant: TenantClient) -> None:
    campaign = await new_campaign(tenant)
    assert not (await record(tenant, campaign["id"], "60")).get("errors")
    update = "mutation($id: ID!, $b: Decimal!) { updateCampaign(input: {id: $id, budget: $b}) { campaign { budget } } }"
    refused = await tenant.gql(update, {"id": campaign["id"], "b": "59.99"})
    assert error_codes(refused) == ["BUDGET_EXCEEDED"], refused
    allowed = await tenant.data(update, {"id": campaign["id"], "b": "60"})
    assert allowed["updateCampaign"]["campaign"]["budget"] == "60.00"


async def test_the_currency_is_fixed_once_money_has_moved(tenant: TenantClient) -> None:
    campaign = await new_campaign(tenant)
    change = "mutation($id: ID!, $c: String!) { updateCampaign(input: {id: $id, currency: $c}) { campaign { currency } } }"
    assert (await tenant.data(change, {"id": campaign["id"], "c": "EUR"}))["updateCampaign"][
        "campaign"
    ]["currency"] == "EUR"
    assert not (await record(tenant, campaign["id"], "5")).get("errors")
    refused = await tenant.gql(change, {"id": campaign["id"], "c": "GBP"})
    assert error_codes(refused) == ["CONFLICT"], refused


@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        ("USD", "0.001"),
        ("USD", "1.005"),
        ("JPY", "1.5"),
        ("USD", "NaN"),
        ("USD", "1e400"),
        ("USD", "1e999999999"),
        ("USD", "1_000"),
        ("USD", "٣"),
        ("JPY", "\uff11\uff12"),  # fullwidth digits
    ],
)
async def test_amounts_finer_than_the_currency_or_not_plain_numerals_are_refused(
    tenant: TenantClient, engine: AsyncEngine, currency: str, amount: str
) -> None:
    campaign = await new_campaign(tenant, budget="1000", currency=currency)
    body = await record(tenant, campaign["id"], amount)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    campaign_pk = decode_id(campaign["id"], "Campaign")
    assert await rows_for(engine, ledger_transaction, tenant.id, campaign_id=campaign_pk) == 0


@pytest.mark.parametrize("amount", ["0", "-5"])
async def test_a_spend_or_refund_must_be_positive(tenant: TenantClient, amount: str) -> None:
    campaign = await new_campaign(tenant)
    for kind in ("SPEND", "REFUND"):
        body = await record(tenant, campaign["id"], amount, kind=kind)
        assert error_codes(body) == ["BAD_USER_INPUT"], body


@pytest.mark.parametrize("currency", ["usd", "US", "ABC", "XXX", "KWD", "€€€"])
async def test_a_currency_that_is_not_iso_4217_with_two_decimals_is_refused(
    tenant: TenantClient, currency: str
) -> None:
    body = await tenant.gql(CREATE, {"name": "x", "budget": "1", "currency": currency})
    assert error_codes(body) == ["BAD_USER_INPUT"], body


async def test_a_jpy_campaign_spends_whole_yen(tenant: TenantClient) -> None:
    campaign = await new_campaign(tenant, budget="50000", currency="JPY")
    body = await record(tenant, campaign["id"], "1500")
    assert not body.get("errors"), body
    assert body["data"]["recordTransaction"]["transaction"]["currency"] == "JPY"
    fractional = await tenant.gql(CREATE, {"name": "x", "budget": "10.50", "currency": "JPY"})
    assert error_codes(fractional) == ["BAD_USER_INPUT"], fractional


async def test_who_may_record_what(tenant: TenantClient) -> None:
    campaign = await new_campaign(tenant)
    viewer = await record(tenant, campaign["id"], "1", role=Role.VIEWER)
    assert error_codes(viewer) == ["FORBIDDEN"], viewer
    editor = await record(tenant, campaign["id"], "1", kind="ADJUSTMENT", role=Role.EDITOR)
    assert error_codes(editor) == ["FORBIDDEN"], editor
    admin = await record(tenant, campaign["id"], "-0.50", kind="ADJUSTMENT", role=Role.ADMIN)
    assert error_codes(admin) == ["BUDGET_EXCEEDED"], admin  # nothing spent to take back
    assert not (await record(tenant, campaign["id"], "2", kind="ADJUSTMENT", role=Role.ADMIN)).get(
        "errors"
    )
    assert (await tenant.data(SPENT, {"id": campaign["id"]}))["campaign"]["spent"] == "2.00"


async def test_another_tenants_campaign_or_agent_is_not_found(
    tenant: TenantClient, other_tenant: TenantClient, engine: AsyncEngine
) -> None:
    theirs = await new_campaign(other_tenant)
    body = await record(tenant, theirs["id"], "1")
    assert error_codes(body) == ["NOT_FOUND"], body
    their_agent = (await other_tenant.data(CREATE_AGENT))["createAgent"]["agent"]["id"]
    mine = await new_campaign(tenant)
    body = await record(tenant, mine["id"], "1", agent=their_agent)
    assert error_codes(body) == ["NOT_FOUND"], body
    assert await rows_for(engine, ledger_transaction, tenant.id) == await rows_for(
        engine, ledger_transaction, tenant.id
    )
    assert (await tenant.data(SPENT, {"id": mine["id"]}))["campaign"]["spent"] == "0.00"


TRANSACTIONS = """
query($id: ID!, $first: Int, $after: String, $filter: TransactionFilter) {
  campaign(id: $id) {
    transactions(first: $first, after: $after, filter: $filter) {
      totalCount
      edges { cursor node { kind amount } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


async def test_transactions_page_newest_first_and_filter_by_kind_and_time(
    tenant: TenantClient,
) -> None:
    campaign = await new_campaign(tenant)
    for amount in ("1", "2", "3"):
        assert not (await record(tenant, campaign["id"], amount)).get("errors")
    assert not (await record(tenant, campaign["id"], "1", kind="REFUND")).get("errors")
    first = await tenant.data(TRANSACTIONS, {"id": campaign["id"], "first": 2})
    page = first["campaign"]["transactions"]
    assert page["totalCount"] == 4
    assert [e["node"] for e in page["edges"]] == [
        {"kind": "REFUND", "amount": "1.00"},
        {"kind": "SPEND", "amount": "3.00"},
    ]
    rest = await tenant.data(
        TRANSACTIONS, {"id": campaign["id"], "first": 2, "after": page["pageInfo"]["endCursor"]}
    )
    assert [e["node"]["amount"] for e in rest["campaign"]["transactions"]["edges"]] == [
        "2.00",
        "1.00",
    ]
    assert rest["campaign"]["transactions"]["pageInfo"]["hasNextPage"] is False
    refunds = await tenant.data(
        TRANSACTIONS, {"id": campaign["id"], "filter": {"kinds": ["REFUND"]}}
    )
    assert refunds["campaign"]["transactions"]["totalCount"] == 1
    future = await tenant.data(
        TRANSACTIONS, {"id": campaign["id"], "filter": {"from": "2999-01-01T00:00:00Z"}}
    )
    assert future["campaign"]["transactions"] == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }
    backwards = await tenant.gql(
        TRANSACTIONS,
        {
            "id": campaign["id"],
            "filter": {"from": "2030-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"},
        },
    )
    assert error_codes(backwards) == ["BAD_USER_INPUT"], backwards


DASHBOARD = """
query($first: Int!) {
  campaigns(first: $first) {
    edges { node {
      currency spent remainingBudget
      transactions(first: 3) { totalCount edges { node { amount agent { id } } } }
      agents(first: 5) { edges { node { spent { amount currency } } } }
    } }
  }
}
"""


async def test_ledger_fields_cost_the_same_statements_for_5_and_50_campaigns(
    engine: AsyncEngine, http: Any
) -> None:
    from tests.support import new_tenant

    tenant = await new_tenant(engine, http)
    agent_id = (await tenant.data(CREATE_AGENT))["createAgent"]["agent"]["id"]
    for i in range(50):
        campaign = await new_campaign(tenant, budget="100")
        assign = "mutation($c: ID!, $a: ID!) { assignAgents(input: {campaignId: $c, agentIds: [$a]}) { campaign { id } } }"
        await tenant.data(assign, {"c": campaign["id"], "a": agent_id})
        if i % 5 == 0:
            assert not (await record(tenant, campaign["id"], "3", agent=agent_id)).get("errors")
    for first in (5, 50):
        with count_statements(engine) as sql:
            data = await tenant.data(DASHBOARD, {"first": first})
        assert len(data["campaigns"]["edges"]) == first
        shapes = [statement.split(" WHERE ")[0][:120] for statement in sql.statements]
        # One statement per loader batch, none repeated per campaign: the campaign page, the
        # transactions page and its count, membership, agents' spend, and at most one by-id
        # read of the agents the transactions name (when the membership page, which also
        # reads them, has not answered first).
        assert len(shapes) == len(set(shapes)) <= 6, " | ".join(shapes)


async def test_a_spend_reaches_the_campaigns_live_subscribers(
    tenant: TenantClient, live_url: str, engine: AsyncEngine
) -> None:
    from tests.api.subscriptions_client import events, ws_session
    from tests.api.test_subscriptions import relayed, take

    campaign = await new_campaign(tenant)
    assert not (await record(tenant, campaign["id"], "4.20")).get("errors")
    await relayed(engine, tenant)
    async with ws_session(live_url, tenant.token(Role.VIEWER)) as session:
        # From the stream's start: the campaign's CREATED, then the SPEND.
        stream = session.subscribe(events(campaignId=campaign["id"], after="0-0"))
        received = await take(stream, 2)
    assert [e["type"] for e in received] == ["CREATED", "SPEND"]
    assert received[1]["campaign"]["id"] == campaign["id"]
