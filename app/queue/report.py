"""The queue at a glance, for `chimera doctor`: depth, the oldest queued task, dead letters."""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from redis.asyncio import Redis

from app.events.stream_ids import as_text
from app.stores.redis import keys


@dataclass(frozen=True)
class QueueReport:
    queued: int
    running: int
    dead: int
    oldest_queued_seconds: float | None

    def describe(self) -> str:
        text = f"{self.queued} queued, {self.running} running, {self.dead} dead"
        if self.oldest_queued_seconds is not None:
            text += f"; oldest queued {self.oldest_queued_seconds:.0f}s ago"
        return text


async def queue_report(redis: Redis, tenant_ids: list[UUID]) -> QueueReport:
    """Every tenant's counts in one pipeline, then the oldest queued tasks' ages in another."""
    async with redis.pipeline(transaction=False) as pipe:
        for tenant_id in tenant_ids:
            pipe.zcard(keys.tenant_tasks(tenant_id, "QUEUED"))
            pipe.zcard(keys.tenant_tasks(tenant_id, "RUNNING"))
            pipe.zcard(keys.tenant_tasks(tenant_id, "DEAD"))
            pipe.zrange(keys.tenant_tasks(tenant_id, "QUEUED"), 0, 0)
        replies = await pipe.execute()
    queued = running = dead = 0
    oldest: list[str] = []
    for i, tenant_id in enumerate(tenant_ids):
        q, r, d, head = replies[4 * i : 4 * i + 4]
        queued, running, dead = queued + int(q), running + int(r), dead + int(d)
        if head:
            task_id = UUID(as_text(head[0]))
            oldest.append(keys.task(tenant_id, task_id))
    created: list[int] = []
    if oldest:
        async with redis.pipeline(transaction=False) as pipe:
            for key in oldest:
                pipe.hget(key, "created")
            created = [int(c) for c in await pipe.execute() if c]
    age = time.time() - min(created) / 1000 if created else None
    return QueueReport(queued, running, dead, age)
