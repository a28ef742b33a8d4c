"""Dashboard aggregates in one statement each: a tenant's campaigns by status and currency,
and per agent the campaigns it works on by status and the memories it holds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from app.stores.postgres.reads import Record
from loaders.base import TenantLoader
from loaders.postgres.pages import ListFilter, filter_where


class CampaignStatsLoader(TenantLoader[ListFilter, list[Record]]):
    """Per (status, currency) among the campaigns a filter matches: how many, their budgets,
    what they spent, and their ids (for the engagement totals, summed in Redis)."""

    async def fetch(self, keys: Sequence[ListFilter]) -> list[list[Record]]:
        results = []
        for flt in keys:  # one filter per request, in practice
            args: list[Any] = [self.tenant_id]
            where = filter_where(flt, args)
            results.append(
                await self.read(
                    "SELECT status, currency, count(*) AS n, sum(budget) AS budget, "
                    f"sum(spent) AS spent, array_agg(id) AS ids FROM campaign WHERE {where} "
                    "GROUP BY status, currency ORDER BY status, currency",
                    *args,
                )
            )
        return results


class CampaignsByStatusByAgentLoader(TenantLoader[UUID, list[tuple[str, int]]]):
    async def fetch(self, keys: Sequence[UUID]) -> list[list[tuple[str, int]]]:
        rows = await self.read(
            "SELECT m.agent_id, c.status, count(*) AS n FROM campaign_agent m "
            "JOIN campaign c ON c.tenant_id = m.tenant_id AND c.id = m.campaign_id "
            "WHERE m.tenant_id = $1 AND m.agent_id = ANY($2::uuid[]) "
            "GROUP BY m.agent_id, c.status ORDER BY m.agent_id, c.status",
            self.tenant_id,
            list(keys),
        )
        found: dict[UUID, list[tuple[str, int]]] = defaultdict(list)
        for row in rows:
            found[row["agent_id"]].append((row["status"], int(row["n"])))
        return [found.get(key, []) for key in keys]


class MemoryCountByAgentLoader(TenantLoader[UUID, int]):
    async def fetch(self, keys: Sequence[UUID]) -> list[int]:
        rows = await self.read(
            "SELECT agent_id, count(*) AS n FROM agent_memory "
            "WHERE tenant_id = $1 AND agent_id = ANY($2::uuid[]) GROUP BY agent_id",
            self.tenant_id,
            list(keys),
        )
        counts = {row["agent_id"]: int(row["n"]) for row in rows}
        return [counts.get(key, 0) for key in keys]
