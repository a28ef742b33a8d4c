"""Tasks read from Redis: by id, counts per agent, and pages per owner, one script call per
batch whatever the number of agents or campaigns on the page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple
from uuid import UUID

from app.pagination import Page, PageArgs, page_from_rows
from app.queue import scripts
from app.queue.records import TaskRecord
from app.stores.redis import keys
from loaders.base import TenantLoader

# Newest first, by the tenant's enqueue sequence.
TASK_ORDER = "seq:desc"


class TaskCounts(NamedTuple):
    queued: int
    running: int


class TaskIndex(NamedTuple):
    """One list of tasks: an owner's (``agent``, ``campaign``) of a status or ``ALL``, or the
    whole tenant's of a status (owner ``tenant``)."""

    owner: str
    owner_id: UUID | None
    status: str

    def key(self, tenant_id: UUID) -> str:
        if self.owner == "tenant" or self.owner_id is None:
            return keys.tenant_tasks(tenant_id, self.status)
        return keys.task_index(tenant_id, self.owner, self.owner_id, self.status)


class TaskByIdLoader(TenantLoader[UUID, TaskRecord | None]):
    store = "Redis"

    async def fetch(self, keys_: Sequence[UUID]) -> list[TaskRecord | None]:
        names = [keys.task(self.tenant_id, pk) for pk in keys_]
        return [
            TaskRecord.from_flat(flat) for flat in await scripts.GET_MANY(self.ctx.redis, names, [])
        ]


class TaskCountsByAgentLoader(TenantLoader[UUID, TaskCounts]):
    """Queued (ready or delayed) and running tasks per agent: exact, since a task is in one
    of those sets exactly while it has that status."""

    store = "Redis"

    async def fetch(self, keys_: Sequence[UUID]) -> list[TaskCounts]:
        replies = await scripts.COUNT_MANY(
            self.ctx.redis, [keys.tenant_prefix(self.tenant_id)], [str(a) for a in keys_]
        )
        return [TaskCounts(int(queued), int(running)) for queued, running in replies]


class TaskPageByIndexLoader(TenantLoader[tuple[TaskIndex, PageArgs], Page]):
    store = "Redis"

    async def fetch(self, keys_: Sequence[tuple[TaskIndex, PageArgs]]) -> list[Page]:
        names: list[str] = []
        args: list[str | int] = [keys.tenant_prefix(self.tenant_id)]
        for index, page in keys_:
            names.append(index.key(self.tenant_id))
            upper = "+inf" if page.after is None else f"({int(str(page.after.value))}"
            args += [upper, page.first + 1]
        replies = await scripts.PAGE_MANY(self.ctx.redis, names, args)
        pages = []
        for (_index, page), rows in zip(keys_, replies, strict=True):
            records = [r for r in map(TaskRecord.from_flat, rows) if r is not None]
            pages.append(page_from_rows(records, page))
        return pages


class TaskCountByIndexLoader(TenantLoader[TaskIndex, int]):
    store = "Redis"

    async def fetch(self, keys_: Sequence[TaskIndex]) -> list[int]:
        names = [index.key(self.tenant_id) for index in keys_]
        return [int(n) for n in await scripts.ZCARD_MANY(self.ctx.redis, names, [])]
