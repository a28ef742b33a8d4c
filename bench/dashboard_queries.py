"""The dashboard queries every setup answers, in one place.

B is the relational shape: the first 50 campaigns of the caller's tenant with their first 5
agents (in assignment order) and first 4 media (oldest first). C is the full dashboard: B
plus each campaign's engagement counters (Redis), each agent's active tasks (Redis), a
presigned URL per media asset (signed in memory) and the 3 most similar campaigns (the
vector index). A is B for PostGraphile 4 over the same tables: same rows, same order, same
fields, with the tenant as a ``condition`` since PostGraphile knows no principal.
"""

from __future__ import annotations

import json
from typing import Any

QUERY_B = """
query DashboardB($first: Int!) {
  campaigns(first: $first) {
    edges { cursor node {
      id name goal status budget startsAt endsAt createdAt updatedAt
      agents(first: 5) { edges { node { id name persona status } } }
      media(first: 4) { edges { node { id kind contentType filename sizeBytes status createdAt } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

QUERY_C = """
query DashboardC($first: Int!) {
  campaigns(first: $first) {
    edges { cursor node {
      id name goal status budget startsAt endsAt createdAt updatedAt
      engagement { impressions clicks likes shares comments }
      agents(first: 5) { edges { node { id name persona status activeTasks } } }
      media(first: 4) {
        edges { node { id kind contentType filename sizeBytes status createdAt url } }
      }
      similar(limit: 3) { score campaign { id name } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

# Relation names are PostGraphile's, from the composite foreign keys (tenant_id, campaign_id)
# and (tenant_id, agent_id); `id` is the uuid column (PostGraphile's global id is `nodeId`).
QUERY_A = """
query DashboardA($tenantId: UUID!, $first: Int!) {
  allCampaigns(
    condition: { tenantId: $tenantId }, orderBy: [CREATED_AT_ASC, ID_ASC], first: $first
  ) {
    edges { cursor node {
      id name goal status budget startsAt endsAt createdAt updatedAt
      campaignAgentsByTenantIdAndCampaignId(orderBy: [ASSIGNED_AT_ASC, AGENT_ID_ASC], first: 5) {
        edges { node { agentByTenantIdAndAgentId { id name persona status } } }
      }
      mediaAssetsByTenantIdAndCampaignId(orderBy: [CREATED_AT_ASC, ID_ASC], first: 4) {
        edges { node { id kind contentType filename sizeBytes status createdAt } }
      }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

PAGE_SIZE = 50  # the "first 50 campaigns"


def request_body(query: str, variables: dict[str, Any]) -> bytes:
    """A GraphQL POST body, as every client of the bench sends it."""
    return json.dumps({"query": query, "variables": variables}).encode()


# E: C plus what a campaign dashboard shows since the ledger, the audit trail and the metrics
# landed: money, 24 hourly points of one seeded day, the last history entries and
# transactions, and the tenant's headline numbers. The day is fixed (the seed's METRIC_DAY),
# so that every run reads the same rows.
QUERY_E = """
query DashboardE($first: Int!, $from: DateTime!, $to: DateTime!) {
  campaignStats { total byStatus { status count } totalSpent { amount currency } }
  campaigns(first: $first) {
    edges { cursor node {
      id name goal status budget startsAt endsAt createdAt updatedAt currency spent remainingBudget
      engagement { impressions clicks likes shares comments }
      agents(first: 5) { edges { node { id name persona status activeTasks } } }
      media(first: 4) {
        edges { node { id kind contentType filename sizeBytes status createdAt url } }
      }
      similar(limit: 3) { score campaign { id name } }
      metrics(from: $from, to: $to, bucket: HOUR) { at impressions clicks spend }
      history(first: 5) { edges { node { action actor occurredAt changes { field before after } } } }
      transactions(first: 3) { edges { node { id amount kind createdAt } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
