"""Query.task and Query.deadTasks."""

from __future__ import annotations

import strawberry

from app.cost.directives import CostStore, connection
from app.ids import decode_id
from loaders.redis.tasks import TaskIndex
from resolvers.info import Info
from resolvers.permissions import IsAdmin
from resolvers.relay import Connection
from resolvers.tasks.types import Task, check_agent_reach, task_list


@strawberry.type
class TaskQueries:
    @strawberry.field(
        description="One task of the caller's tenant, or null (kept 7 days after it ends)."
    )
    async def task(self, info: Info, id: strawberry.ID) -> Task | None:
        record = await info.context.loaders.task_by_id.load(decode_id(id, "Task"))
        if record is None:
            return None
        check_agent_reach(info, record.agent_id)
        return Task.of(record)

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="Tasks that ran out of attempts, newest first: the dead letters, kept until "
        "retried (retryTask) or dismissed (cancelTask).",
        directives=connection(store=CostStore.REDIS),
    )
    def dead_tasks(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[Task]:
        return task_list(info, TaskIndex("tenant", None, "DEAD"), first, after)
