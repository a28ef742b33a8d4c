"""The ledger read in batches: pages of transactions per campaign, their counts, and what
each agent spent, one statement per batch whatever the number of campaigns or agents.

A campaign's total needs no loader: ``campaign.spent`` is kept in the campaign row by every
transaction (app/commands/ledger.py), so it arrives with the row a page already read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from app.pagination import Page, PageArgs, page_from_rows
from app.stores.postgres.reads import Record
from loaders.base import LoaderContext, TenantLoader
from loaders.postgres.rows import RowByIdLoader

# Newest first: a dashboard shows the latest spend.
TRANSACTION_ORDER = "created_at:desc"


@dataclass(frozen=True)
class TransactionFilter:
    kinds: tuple[str, ...] | None = None  # None: any kind; (): none (an empty IN-list)
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def args(self) -> tuple[Any, ...]:
        return (None if self.kinds is None else list(self.kinds), self.since, self.until)


TransactionPageKey = tuple[UUID, TransactionFilter, PageArgs]

# The filter's (kinds, since, until) are parameters $k, $k+1, $k+2.
_FILTER = (
    "t.tenant_id = $1 AND t.campaign_id = p.id "
    "AND (${k}::text[] IS NULL OR t.kind = ANY(${k}::text[])) "
    "AND (${s}::timestamptz IS NULL OR t.created_at >= ${s}) "
    "AND (${u}::timestamptz IS NULL OR t.created_at < ${u})"
)
_FILTERED = _FILTER.format(k=4, s=5, u=6)
_PAGE = (
    "SELECT p.id AS parent_id, x.* "
    "FROM unnest($2::uuid[]) WITH ORDINALITY AS p(id, ord) "
    "CROSS JOIN LATERAL (SELECT t.* FROM ledger_transaction t WHERE {where} "
    "ORDER BY t.created_at DESC, t.id DESC LIMIT $3) AS x "
    "ORDER BY p.ord, x.created_at DESC, x.id DESC"
)
FIRST_PAGE = _PAGE.format(where=_FILTERED)
NEXT_PAGE = _PAGE.format(where=_FILTERED + " AND (t.created_at, t.id) < ($7, $8)")


class TransactionByIdLoader(RowByIdLoader):
    table = "ledger_transaction"


class TransactionsByCampaignLoader(TenantLoader[TransactionPageKey, Page]):
    """One statement per distinct (filter, page) among the keys: a ``LATERAL`` join reading
    each campaign's newest transactions from the (tenant, campaign, created_at, id) index."""

    def __init__(self, ctx: LoaderContext, by_id: TransactionByIdLoader) -> None:
        super().__init__(ctx)
        self.by_id = by_id

    async def fetch(self, keys: Sequence[TransactionPageKey]) -> list[Page]:
        groups: dict[tuple[TransactionFilter, PageArgs], list[UUID]] = defaultdict(list)
        for campaign_id, where, args in keys:
            groups[(where, args)].append(campaign_id)
        found: dict[TransactionPageKey, list[Record]] = {}
        for (where, args), campaign_ids in groups.items():
            statement: tuple[Any, ...] = (
                FIRST_PAGE if args.after is None else NEXT_PAGE,
                self.tenant_id,
                campaign_ids,
                args.first + 1,
                *where.args(),
            )
            if args.after is not None:
                statement = (*statement, args.after.value, args.after.pk)
            for row in await self.read(*statement):
                found.setdefault((row[0], where, args), []).append(row)
        pages = [page_from_rows(found.get(key, []), key[2]) for key in keys]
        self.by_id.remember_all(row for page in pages for row in page.rows)
        return pages


class TransactionCountByCampaignLoader(TenantLoader[tuple[UUID, TransactionFilter], int]):
    async def fetch(self, keys: Sequence[tuple[UUID, TransactionFilter]]) -> list[int]:
        groups: dict[TransactionFilter, list[UUID]] = defaultdict(list)
        for campaign_id, where in keys:
            groups[where].append(campaign_id)
        counts: dict[tuple[UUID, TransactionFilter], int] = {}
        for where, campaign_ids in groups.items():
            rows = await self.read(
                "SELECT p.id, count(t.id) AS n FROM unnest($2::uuid[]) AS p(id) "
                "LEFT JOIN ledger_transaction t ON " + _FILTER.format(k=3, s=4, u=5) + " "
                "GROUP BY p.id",
                self.tenant_id,
                campaign_ids,
                *where.args(),
            )
            counts.update(((row["id"], where), int(row["n"])) for row in rows)
        return [counts.get(key, 0) for key in keys]


class SpentByAgentLoader(TenantLoader[UUID, list[tuple[str, Decimal]]]):
    """What each agent's transactions moved, per currency (an agent may work on campaigns in
    several): SPEND and ADJUSTMENT add, REFUND subtracts."""

    async def fetch(self, keys: Sequence[UUID]) -> list[list[tuple[str, Decimal]]]:
        rows = await self.read(
            "SELECT agent_id, currency, "
            "sum(CASE WHEN kind = 'REFUND' THEN -amount ELSE amount END) AS spent "
            "FROM ledger_transaction WHERE tenant_id = $1 AND agent_id = ANY($2::uuid[]) "
            "GROUP BY agent_id, currency ORDER BY agent_id, currency",
            self.tenant_id,
            list(keys),
        )
        spent: dict[UUID, list[tuple[str, Decimal]]] = defaultdict(list)
        for row in rows:
            spent[row["agent_id"]].append((row["currency"], row["spent"]))
        return [spent.get(key, []) for key in keys]
