"""The audit trail read in batches: a tenant's log filtered, and aggregates' histories.

Entries are ordered newest first by their id (an identity, so insertion order), and a page
resumes strictly before the last id it showed. A history is one ``LATERAL`` statement for
every campaign (or agent) of a page, from the (tenant, aggregate type, aggregate id, id)
index; the log is one statement per distinct filter and page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from app.pagination import Page
from app.stores.postgres.reads import Record
from loaders.base import TenantLoader


class AuditPageArgs(NamedTuple):
    first: int
    before_id: int | None = None


@dataclass(frozen=True)
class AuditFilter:
    entity_type: str | None = None
    entity_id: UUID | None = None
    actor: str | None = None
    actions: tuple[str, ...] | None = None  # None: any action; (): none (an empty IN-list)
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def args(self) -> tuple[Any, ...]:
        return (
            self.entity_type,
            self.entity_id,
            self.actor,
            None if self.actions is None else list(self.actions),
            self.since,
            self.until,
        )


# The filter's six values are $2 to $7.
_LOG_WHERE = (
    "tenant_id = $1 "
    "AND ($2::text IS NULL OR entity_type = $2) "
    "AND ($3::uuid IS NULL OR entity_id = $3) "
    "AND ($4::text IS NULL OR actor = $4) "
    "AND ($5::text[] IS NULL OR action = ANY($5::text[])) "
    "AND ($6::timestamptz IS NULL OR created_at >= $6) "
    "AND ($7::timestamptz IS NULL OR created_at < $7)"
)
LOG_PAGE = (
    f"SELECT * FROM audit_log WHERE {_LOG_WHERE} "
    "AND ($8::bigint IS NULL OR id < $8) ORDER BY id DESC LIMIT $9"
)
LOG_COUNT = f"SELECT count(*) AS n FROM audit_log WHERE {_LOG_WHERE}"

_HISTORY = (
    "SELECT p.id AS parent_id, x.* "
    "FROM unnest($2::uuid[]) WITH ORDINALITY AS p(id, ord) "
    "CROSS JOIN LATERAL (SELECT a.* FROM audit_log a "
    "WHERE a.tenant_id = $1 AND a.aggregate_type = $3 AND a.aggregate_id = p.id{after} "
    "ORDER BY a.id DESC LIMIT $4) AS x "
    "ORDER BY p.ord, x.id DESC"
)
HISTORY_FIRST = _HISTORY.format(after="")
HISTORY_NEXT = _HISTORY.format(after=" AND a.id < $5")


def page_of(rows: list[Record], args: AuditPageArgs) -> Page:
    return Page(
        rows=rows[: args.first],
        has_next=len(rows) > args.first,
        has_previous=args.before_id is not None,
    )


class AuditLogLoader(TenantLoader[tuple[AuditFilter, AuditPageArgs], Page]):
    async def fetch(self, keys: Sequence[tuple[AuditFilter, AuditPageArgs]]) -> list[Page]:
        pages = []
        for where, args in keys:  # distinct keys: one request rarely asks for two logs
            rows = await self.read(
                LOG_PAGE, self.tenant_id, *where.args(), args.before_id, args.first + 1
            )
            pages.append(page_of(rows, args))
        return pages


class AuditLogCountLoader(TenantLoader[AuditFilter, int]):
    async def fetch(self, keys: Sequence[AuditFilter]) -> list[int]:
        counts = []
        for where in keys:
            rows = await self.read(LOG_COUNT, self.tenant_id, *where.args())
            counts.append(int(rows[0]["n"]))
        return counts


HistoryKey = tuple[str, UUID, AuditPageArgs]


class HistoryByAggregateLoader(TenantLoader[HistoryKey, Page]):
    """Histories of many campaigns (or agents) at once: one statement per distinct
    (aggregate type, page) among the keys."""

    async def fetch(self, keys: Sequence[HistoryKey]) -> list[Page]:
        groups: dict[tuple[str, AuditPageArgs], list[UUID]] = defaultdict(list)
        for aggregate_type, aggregate_id, args in keys:
            groups[(aggregate_type, args)].append(aggregate_id)
        found: dict[HistoryKey, list[Record]] = {}
        for (aggregate_type, args), ids in groups.items():
            statement: tuple[Any, ...] = (
                HISTORY_FIRST if args.before_id is None else HISTORY_NEXT,
                self.tenant_id,
                ids,
                aggregate_type,
                args.first + 1,
            )
            if args.before_id is not None:
                statement = (*statement, args.before_id)
            for row in await self.read(*statement):
                found.setdefault((aggregate_type, row[0], args), []).append(row)
        return [page_of(found.get(key, []), key[2]) for key in keys]


class HistoryCountByAggregateLoader(TenantLoader[tuple[str, UUID], int]):
    async def fetch(self, keys: Sequence[tuple[str, UUID]]) -> list[int]:
        groups: dict[str, list[UUID]] = defaultdict(list)
        for aggregate_type, aggregate_id in keys:
            groups[aggregate_type].append(aggregate_id)
        counts: dict[tuple[str, UUID], int] = {}
        for aggregate_type, ids in groups.items():
            rows = await self.read(
                "SELECT aggregate_id, count(*) AS n FROM audit_log WHERE tenant_id = $1 "
                "AND aggregate_type = $2 AND aggregate_id = ANY($3::uuid[]) "
                "GROUP BY aggregate_id",
                self.tenant_id,
                aggregate_type,
                ids,
            )
            counts.update(((aggregate_type, row["aggregate_id"]), int(row["n"])) for row in rows)
        return [counts.get(key, 0) for key in keys]
