"""What refusals say: ids in an error's extensions are global ids a client can look up, and
a message about a status reads as English ("an ACTIVE campaign")."""

from __future__ import annotations

import uuid

from app.ids import encode_id
from tests.support import TenantClient, error_codes

CAMPAIGN = 'mutation { createCampaign(input: {name: "Said", budget: "100"}) { campaign { id } } }'
AGENT = 'mutation { createAgent(input: {name: "Late"}) { agent { id } } }'
RECORD = """mutation($c: ID!, $amount: Decimal!, $key: String!) {
  recordTransaction(input: {campaignId: $c, kind: SPEND, amount: $amount, idempotencyKey: $key}) {
    transaction { id } } }"""
TRANSACTION = "query($id: ID!) { node(id: $id) { ... on Transaction { id amount } } }"
STATUS = """mutation($id: ID!, $status: CampaignStatus!) {
  setCampaignStatus(input: {id: $id, status: $status}) { campaign { status } } }"""
ASSIGN = """mutation($c: ID!, $a: ID!) { assignAgents(input: {campaignId: $c, agentIds: [$a]}) {
  campaign { id } } }"""


async def new_campaign(tenant: TenantClient) -> str:
    campaign_id: str = (await tenant.data(CAMPAIGN))["createCampaign"]["campaign"]["id"]
    return campaign_id


async def test_a_reused_idempotency_key_names_the_original_transaction_by_its_global_id(
    tenant: TenantClient,
) -> None:
    campaign_id = await new_campaign(tenant)
    key = uuid.uuid4().hex
    first = await tenant.data(RECORD, {"c": campaign_id, "amount": "10", "key": key})
    original = first["recordTransaction"]["transaction"]["id"]
    reused = await tenant.gql(RECORD, {"c": campaign_id, "amount": "11", "key": key})
    assert error_codes(reused) == ["IDEMPOTENCY_KEY_REUSED"], reused
    named = reused["errors"][0]["extensions"]["transactionId"]
    assert named == original
    found = await tenant.data(TRANSACTION, {"id": named})
    assert found["node"] == {"id": original, "amount": "10.00"}


async def test_a_refused_status_change_takes_the_article_its_status_needs(
    tenant: TenantClient,
) -> None:
    campaign_id = await new_campaign(tenant)
    draft = await tenant.gql(STATUS, {"id": campaign_id, "status": "COMPLETED"})
    assert draft["errors"][0]["message"] == "A DRAFT campaign cannot become COMPLETED"
    await tenant.data(STATUS, {"id": campaign_id, "status": "ACTIVE"})
    active = await tenant.gql(STATUS, {"id": campaign_id, "status": "DRAFT"})
    assert error_codes(active) == ["CONFLICT"], active
    assert active["errors"][0]["message"] == "An ACTIVE campaign cannot become DRAFT"
    await tenant.data(STATUS, {"id": campaign_id, "status": "PAUSED"})
    await tenant.data(STATUS, {"id": campaign_id, "status": "ARCHIVED"})
    agent_id = (await tenant.data(AGENT))["createAgent"]["agent"]["id"]
    joining = await tenant.gql(ASSIGN, {"c": campaign_id, "a": agent_id})
    assert joining["errors"][0]["message"] == "Agents cannot join an ARCHIVED campaign"


async def test_an_unknown_campaign_is_named_by_the_input_field_that_gave_it(
    tenant: TenantClient,
) -> None:
    missing = encode_id("Campaign", uuid.uuid4())
    status = await tenant.gql(STATUS, {"id": missing, "status": "ACTIVE"})
    assert error_codes(status) == ["NOT_FOUND"], status
    assert status["errors"][0]["extensions"]["argument"] == "id"
    agent = (await tenant.data(AGENT))["createAgent"]["agent"]["id"]
    assign = await tenant.gql(ASSIGN, {"c": missing, "a": agent})
    assert error_codes(assign) == ["NOT_FOUND"], assign
    assert assign["errors"][0]["extensions"]["argument"] == "campaignId"
