"""Loaders for both directions of campaign membership, one statement per batch.

``Campaign.agents`` on a page of 50 campaigns is one query for all 50: each campaign's
first ``first + 1`` memberships come from the (campaign_id, assigned_at, agent_id) index in
a ``LATERAL`` join (loaders/postgres/partitioned.py), so each parent gets its own page and
the statement count does not grow with the page size.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from loaders.base import TenantLoader
from loaders.postgres.partitioned import PartitionedPageLoader, lateral

EDGE_ORDER = "assigned_at:asc"


def _members(child: str, parent_col: str, child_col: str) -> tuple[str, str]:
    return lateral(
        f"SELECT c.*, ca.assigned_at AS edge_at FROM campaign_agent ca "
        f"JOIN {child} c ON c.tenant_id = ca.tenant_id AND c.id = ca.{child_col} "
        f"WHERE ca.tenant_id = $1 AND ca.{parent_col} = p.id",
        order=f"ca.assigned_at, ca.{child_col}",
        after=f"(ca.assigned_at, ca.{child_col}) > ($4, $5)",
        outer_order="x.edge_at, x.id",
    )


class AgentsByCampaignLoader(PartitionedPageLoader):
    first_page, next_page = _members("agent", "campaign_id", "agent_id")


class CampaignsByAgentLoader(PartitionedPageLoader):
    first_page, next_page = _members("campaign", "agent_id", "campaign_id")


class _MemberCountLoader(TenantLoader[UUID, int]):
    parent_col: str

    async def fetch(self, keys: Sequence[UUID]) -> list[int]:
        col = self.parent_col
        rows = await self.read(
            f"SELECT {col} AS parent, count(*) AS n FROM campaign_agent "
            f"WHERE tenant_id = $1 AND {col} = ANY($2::uuid[]) GROUP BY {col}",
            self.tenant_id,
            list(keys),
        )
        counts = {row["parent"]: int(row["n"]) for row in rows}
        return [counts.get(key, 0) for key in keys]


class AgentCountByCampaignLoader(_MemberCountLoader):
    parent_col = "campaign_id"


class CampaignCountByAgentLoader(_MemberCountLoader):
    parent_col = "agent_id"
