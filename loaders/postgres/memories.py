"""An agent's latest memories, for many agents in one statement."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import func, select

from app.pagination import PageArgs
from app.stores.postgres.tables import agent_memory
from loaders.postgres.partitioned import PartitionedPageLoader


class RecentMemoriesByAgentLoader(PartitionedPageLoader):
    def statement(self, parent_ids: list[UUID], args: PageArgs) -> Any:
        m = agent_memory
        rank = func.row_number().over(
            partition_by=m.c.agent_id, order_by=(m.c.created_at.desc(), m.c.id.desc())
        )
        ranked = (
            select(m, m.c.agent_id.label("parent_id"), rank.label("rank"))
            .where(m.c.tenant_id == self.tenant_id, m.c.agent_id.in_(parent_ids))
            .subquery()
        )
        return (
            select(ranked)
            .where(ranked.c.rank <= args.first + 1)
            .order_by(ranked.c.parent_id, ranked.c.rank)
        )
