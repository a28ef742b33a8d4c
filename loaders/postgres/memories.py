"""An agent's latest memories, for many agents in one statement."""

from __future__ import annotations

from loaders.postgres.partitioned import PartitionedPageLoader, lateral


class RecentMemoriesByAgentLoader(PartitionedPageLoader):
    first_page, next_page = lateral(
        "SELECT m.* FROM agent_memory m WHERE m.tenant_id = $1 AND m.agent_id = p.id",
        order="m.created_at DESC, m.id DESC",
        after="(m.created_at, m.id) < ($4, $5)",
        outer_order="x.created_at DESC, x.id DESC",
    )
