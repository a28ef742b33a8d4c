"""Loaders for both directions of campaign membership, one statement per batch.

``Campaign.agents`` on a page of 50 campaigns is one query for all 50: rows are ranked per
parent with a window function and cut at ``first + 1``, so each parent gets its own page and
the statement count does not grow with the page size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Column, Table, and_, func, select, tuple_

from app.pagination import PageArgs
from app.stores.postgres.tables import agent, campaign, campaign_agent
from loaders.base import TenantLoader
from loaders.postgres.partitioned import PartitionedPageLoader

EDGE_ORDER = "assigned_at:asc"


class _MembersLoader(PartitionedPageLoader):
    """Pages of ``child`` rows per ``parent_col`` value, in assignment order."""

    child: Table
    parent_col: Column[Any]
    child_col: Column[Any]

    def statement(self, parent_ids: list[UUID], args: PageArgs) -> Any:
        ca, child = campaign_agent, self.child
        conditions = [ca.c.tenant_id == self.tenant_id, self.parent_col.in_(parent_ids)]
        if args.after is not None:
            conditions.append(
                tuple_(ca.c.assigned_at, child.c.id) > tuple_(args.after.value, args.after.pk)
            )
        rank = func.row_number().over(
            partition_by=self.parent_col, order_by=(ca.c.assigned_at, child.c.id)
        )
        ranked = (
            select(
                child,
                self.parent_col.label("parent_id"),
                ca.c.assigned_at.label("edge_at"),
                rank.label("rank"),
            )
            .select_from(
                ca.join(
                    child, and_(child.c.id == self.child_col, child.c.tenant_id == ca.c.tenant_id)
                )
            )
            .where(*conditions)
            .subquery()
        )
        return (
            select(ranked)
            .where(ranked.c.rank <= args.first + 1)
            .order_by(ranked.c.parent_id, ranked.c.rank)
        )


class AgentsByCampaignLoader(_MembersLoader):
    child = agent
    parent_col = campaign_agent.c.campaign_id
    child_col = campaign_agent.c.agent_id


class CampaignsByAgentLoader(_MembersLoader):
    child = campaign
    parent_col = campaign_agent.c.agent_id
    child_col = campaign_agent.c.campaign_id


class _MemberCountLoader(TenantLoader[UUID, int]):
    parent_col: Column[Any]

    async def fetch(self, keys: Sequence[UUID]) -> list[int]:
        query = (
            select(self.parent_col, func.count())
            .where(campaign_agent.c.tenant_id == self.tenant_id, self.parent_col.in_(keys))
            .group_by(self.parent_col)
        )
        async with self.ctx.engine.connect() as conn:
            counts = {parent: int(n) for parent, n in await conn.execute(query)}
        return [counts.get(key, 0) for key in keys]


class AgentCountByCampaignLoader(_MemberCountLoader):
    parent_col = campaign_agent.c.campaign_id


class CampaignCountByAgentLoader(_MemberCountLoader):
    parent_col = campaign_agent.c.agent_id
