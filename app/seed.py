"""Demo data for `make run`: one tenant with agents and campaigns on distinct topics.

Written through the same commands as the API, so the demo rows have audit and outbox
history like any other. The one exception is the month of past engagement a dashboard's
charts need: commands stamp events with the time they run, so those are written as the
ENGAGEMENT events they would have been, dated when they happened. The relay counts them in
Redis and the metrics consumer buckets them, as for any committed event (ADRs 0019, 0022).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal, Role
from app.commands import agents as agent_commands
from app.commands import campaigns as campaign_commands
from app.commands.engagement import APPLY_AFTER_COMMIT
from app.commands.ledger import TransactionInput, record_transaction
from app.commands.tenants import create_tenant, tenant_by_slug
from app.queue.core import Lease, NewTask, TaskQueue
from app.stores.postgres.tables import outbox, tenant
from app.stores.redis.keys import ENGAGEMENT_FIELDS

DEMO_SLUG = "demo"
HISTORY_DAYS = 30

AGENTS = [
    ("Ava", "Upbeat copywriter for lifestyle brands; short punchy captions.", "ACTIVE"),
    ("Bram", "Data-driven media buyer who tunes bids hourly.", "ACTIVE"),
    ("Chen", "Community manager answering comments in a warm tone.", "ACTIVE"),
    ("Dara", "Video editor cutting 15-second vertical clips.", "ACTIVE"),
    ("Eli", "B2B strategist writing long-form thought leadership.", "PAUSED"),
    ("Fenna", "Influencer scout for fitness and wellness creators.", "ACTIVE"),
    ("Gus", "Retired seasonal promo bot from last winter.", "RETIRED"),
]

CAMPAIGNS = [
    (
        "Sustainable fashion spring drop",
        "Promote the recycled-fabric clothing line to eco-conscious shoppers.",
        "25000.00",
        "ACTIVE",
        ["Ava", "Chen", "Dara"],
    ),
    (
        "Fitness app launch",
        "Drive installs of the new workout tracking app among gym-goers.",
        "40000.00",
        "ACTIVE",
        ["Bram", "Fenna", "Dara"],
    ),
    (
        "Coffee subscription winter push",
        "Grow monthly subscribers for single-origin coffee deliveries.",
        "12000.00",
        "PAUSED",
        ["Ava", "Bram"],
    ),
    (
        "Cloud security webinar",
        "Fill a webinar on zero-trust security for IT leaders at mid-size companies.",
        "8000.00",
        "DRAFT",
        ["Eli"],
    ),
    (
        "Holiday toy sale",
        "Clear toy inventory with gift guides for parents before the holidays.",
        "30000.00",
        "COMPLETED",
        ["Ava", "Chen"],
    ),
    (
        "Electric car test drives",
        "Book test drives of the new electric hatchback in three cities.",
        "60000.00",
        "ACTIVE",
        ["Bram", "Dara", "Chen"],
    ),
]


async def _engagement_history(
    engine: AsyncEngine, principal: Principal, campaign_id: UUID, index: int, now: datetime
) -> None:
    """A month of daily engagement, a few events a day, dated in the past: deterministic,
    different per campaign, growing towards today."""
    rng = random.Random(index)
    rows = []
    for days_ago in range(HISTORY_DAYS, 0, -1):
        for _ in range(rng.randint(2, 4)):
            moment = now - timedelta(days=days_ago, hours=rng.randint(0, 23))
            impressions = rng.randint(50, 200) * (HISTORY_DAYS + 10 - days_ago) // 10
            counts = (
                impressions,
                impressions // rng.randint(10, 30),
                impressions // rng.randint(20, 60),
                impressions // rng.randint(80, 300),
                impressions // rng.randint(100, 400),
            )
            for field, count in zip(ENGAGEMENT_FIELDS, counts, strict=True):
                if count:
                    rows.append(
                        {
                            "tenant_id": principal.tenant_id,
                            "aggregate_type": "campaign",
                            "aggregate_id": campaign_id,
                            "event_type": "ENGAGEMENT",
                            "payload": {
                                "campaignId": str(campaign_id),
                                "field": field,
                                "count": count,
                                APPLY_AFTER_COMMIT: True,
                            },
                            "created_at": moment,
                        }
                    )
    async with engine.begin() as conn:
        await conn.execute(insert(outbox), rows)


@dataclass
class SeedResult:
    tenant_id: UUID
    created: bool


async def database_is_empty(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(tenant))).scalar_one()) == 0


async def seed_demo(engine: AsyncEngine, redis: Redis | None = None) -> SeedResult:
    """The demo tenant, if it does not exist yet; with ``redis``, its agents' tasks too."""
    existing = await tenant_by_slug(engine, DEMO_SLUG)
    if existing is not None:
        return SeedResult(tenant_id=existing.id, created=False)
    row = await create_tenant(engine, DEMO_SLUG, "Demo Tenant")
    principal = Principal(tenant_id=row.id, tenant_slug=DEMO_SLUG, role=Role.ADMIN, subject="seed")
    agent_ids: dict[str, UUID] = {}
    campaign_ids: list[UUID] = []
    for name, persona, _status in AGENTS:
        # Retired agents cannot join campaigns, so everyone joins first and retires after.
        created = await agent_commands.create_agent(
            engine, principal, name=name, persona=persona, status="ACTIVE"
        )
        agent_ids[name] = created.id
    now = datetime.now(UTC).replace(microsecond=0)
    for index, (name, goal, budget, status, members) in enumerate(CAMPAIGNS):
        campaign = await campaign_commands.create_campaign(
            engine,
            principal,
            name=name,
            goal=goal,
            budget=Decimal(budget),
            starts_at=now + timedelta(days=7 * index - 14),
            ends_at=now + timedelta(days=7 * index + 30),
        )
        campaign_ids.append(campaign.id)
        await campaign_commands.assign_agents(
            engine, principal, campaign.id, [agent_ids[m] for m in members]
        )
        path = {
            "ACTIVE": ["ACTIVE"],
            "PAUSED": ["ACTIVE", "PAUSED"],
            "COMPLETED": ["ACTIVE", "COMPLETED"],
            "DRAFT": [],
        }[status]
        for step in path:
            await campaign_commands.set_campaign_status(engine, principal, campaign.id, step)
        if status != "DRAFT":  # some spend, by its agents, so the dashboard has money to show
            for week, member in enumerate(members):
                amount = (Decimal(budget) * Decimal(week + 1) / 20).quantize(Decimal("0.01"))
                given = TransactionInput(
                    campaign_id=campaign.id,
                    agent_id=agent_ids[member],
                    kind="SPEND",
                    amount=amount,
                    description=f"Week {week + 1} ad spend",
                    idempotency_key=f"demo-{index}-{week}",
                )
                await record_transaction(engine, principal, given)
            await _engagement_history(engine, principal, campaign.id, index, now)
    for name, _, status in AGENTS:
        if status != "ACTIVE":
            await agent_commands.update_agent(
                engine, principal, agent_ids[name], agent_commands.AgentChanges(status=status)
            )
    if redis is not None:
        await seed_tasks(redis, row.id, agent_ids, campaign_ids)
    return SeedResult(tenant_id=row.id, created=True)


async def seed_tasks(
    redis: Redis, tenant_id: UUID, agent_ids: dict[str, UUID], campaign_ids: list[UUID]
) -> None:
    """A few tasks in each state, through the queue as runtimes would move them. Each agent's
    tasks are enqueued and worked in turn, so a claim takes the very ones meant for it."""
    queue = TaskQueue(redis, tenant_id, timeout=10)
    fashion, fitness = campaign_ids[0], campaign_ids[1]

    async def run(agent: str, kind: str, campaign: UUID | None, **options: Any) -> Lease:
        task = NewTask(agent_ids[agent], campaign, kind, {"demo": True, "kind": kind}, **options)
        await queue.enqueue(task, f"demo-{agent}-{kind}")
        (lease,) = (await queue.claim(agent_ids[agent], 1, 3600)).leases
        return lease

    for kind in ("caption.write", "caption.review"):  # SUCCEEDED
        done = await run("Ava", kind, fashion)
        await queue.complete(agent_ids["Ava"], done.task.id, done.token, {"words": 12})
    failed = await run("Ava", "image.generate", fashion)  # FAILED: not worth retrying
    await queue.fail(agent_ids["Ava"], failed.task.id, failed.token, "prompt refused", False)
    dead = await run("Bram", "bids.tune", fitness, max_attempts=1)  # DEAD: out of attempts
    await queue.fail(agent_ids["Bram"], dead.task.id, dead.token, "ad API timed out", True)
    await run("Dara", "clip.cut", fitness)  # RUNNING, under an hour's lease
    cancelled = NewTask(agent_ids["Chen"], fashion, "comments.answer", {"demo": True})
    record, _ = await queue.enqueue(cancelled, "demo-Chen-cancelled")
    await queue.cancel(record.id)  # CANCELLED
    later = datetime.now(UTC) + timedelta(hours=2)
    for agent, kind, campaign, options in (  # QUEUED: now, by priority, and one for later
        ("Chen", "comments.answer", fashion, {"priority": 80}),
        ("Fenna", "creators.shortlist", fitness, {}),
        ("Fenna", "creators.contact", fitness, {"not_before": later}),
    ):
        task = NewTask(agent_ids[agent], campaign, kind, {"demo": True}, **options)
        await queue.enqueue(task, f"demo-{agent}-{kind}-queued")


async def seed_running_tasks(redis: Redis, tenant_id: UUID, counts: dict[UUID, int]) -> None:
    """Give each agent that many RUNNING tasks (an hour's lease), through the queue as a
    runtime would: for benchmark datasets and tests that need busy agents."""
    queue = TaskQueue(redis, tenant_id, timeout=30)
    for agent_id, count in counts.items():
        if not count:
            continue
        for i in range(count):
            task = NewTask(agent_id, None, "seeded", None)
            await queue.enqueue(task, f"seeded-{agent_id}-{i}")
        claimed = await queue.claim(agent_id, count, 3600)
        if len(claimed.leases) != count:
            raise RuntimeError(f"agent {agent_id} holds {len(claimed.leases)} of {count} tasks")
