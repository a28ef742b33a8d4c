"""The per-request set of loaders, bound to the caller's Principal.

Built in the GraphQL context getter for every request (never at module level), so no cache
outlives a request or crosses a tenant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.auth import Principal
from loaders.base import LoaderContext
from loaders.postgres.media import MediaByCampaignLoader, MediaCountByCampaignLoader
from loaders.postgres.membership import (
    AgentCountByCampaignLoader,
    AgentsByCampaignLoader,
    CampaignCountByAgentLoader,
    CampaignsByAgentLoader,
)
from loaders.postgres.memories import RecentMemoriesByAgentLoader
from loaders.postgres.pages import (
    AgentCountByFilterLoader,
    AgentPageByQueryLoader,
    CampaignCountByFilterLoader,
    CampaignPageByQueryLoader,
)
from loaders.postgres.rows import (
    AgentByIdLoader,
    AgentMemoryByIdLoader,
    CampaignByIdLoader,
    MediaAssetByIdLoader,
    TenantByIdLoader,
)
from loaders.redis.counters import ActiveTasksByAgentLoader, EngagementByCampaignLoader
from loaders.vectors.search import (
    EmbeddingByTextLoader,
    SimilarCampaignsByCampaignLoader,
    VectorHitsByQueryLoader,
)

if TYPE_CHECKING:
    from app.lifespan import Stores


class Loaders:
    def __init__(self, principal: Principal, stores: Stores, timeout: float) -> None:
        ctx = LoaderContext(
            principal=principal,
            engine=stores.engine,
            redis=stores.redis,
            vectors=stores.vectors,
            embedder=stores.embedder,
            timeout=timeout,
        )
        self.principal = principal
        self.tenant_by_id = TenantByIdLoader(ctx)
        self.agent_by_id = AgentByIdLoader(ctx)
        self.campaign_by_id = CampaignByIdLoader(ctx)
        self.agent_page = AgentPageByQueryLoader(ctx, self.agent_by_id)
        self.campaign_page = CampaignPageByQueryLoader(ctx, self.campaign_by_id)
        self.agent_count = AgentCountByFilterLoader(ctx)
        self.campaign_count = CampaignCountByFilterLoader(ctx)
        self.agents_by_campaign = AgentsByCampaignLoader(ctx, self.agent_by_id)
        self.campaigns_by_agent = CampaignsByAgentLoader(ctx, self.campaign_by_id)
        self.agent_count_by_campaign = AgentCountByCampaignLoader(ctx)
        self.campaign_count_by_agent = CampaignCountByAgentLoader(ctx)
        self.engagement_by_campaign = EngagementByCampaignLoader(ctx)
        self.active_tasks_by_agent = ActiveTasksByAgentLoader(ctx)
        self.media_by_id = MediaAssetByIdLoader(ctx)
        self.media_by_campaign = MediaByCampaignLoader(ctx, self.media_by_id)
        self.media_count_by_campaign = MediaCountByCampaignLoader(ctx)
        self.memory_by_id = AgentMemoryByIdLoader(ctx)
        self.recent_memories_by_agent = RecentMemoriesByAgentLoader(ctx, self.memory_by_id)
        self.embedding_by_text = EmbeddingByTextLoader(ctx)
        self.hits_by_query = VectorHitsByQueryLoader(ctx, self.embedding_by_text)
        self.similar_by_campaign = SimilarCampaignsByCampaignLoader(ctx)
