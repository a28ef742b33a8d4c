"""Subscription.campaignEvents: replay after a cursor, then live, with no gap and no repeat.

The subscriber joins the process's fan-out first and replays from the stream second, then
drops live events it already replayed: whatever commits while the replay runs is buffered,
not lost, and nothing is delivered twice across the seam.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import TypeVar
from uuid import UUID

import strawberry
from opentelemetry import trace
from opentelemetry.trace import Tracer
from redis.asyncio import Redis

from app.errors import BadUserInput, NotFound
from app.events.hub import STREAMS, StreamEvent, SubscriberTooSlow, entries_of
from app.events.stream_ids import parse
from app.ids import decode_id
from app.stores.redis.client import unavailable_as_error
from app.telemetry.event_links import EVENT_ID, start_delivery
from loaders.registry import Loaders
from resolvers.events.types import AgentEvent, CampaignEvent, CampaignEventType, agent_event
from resolvers.info import Info
from resolvers.tasks.types import check_agent_reach

REPLAY_CHUNK = 500
_UNTRACED = nullcontext()
T = TypeVar("T")


def _event(event: StreamEvent, loaders: Loaders) -> CampaignEvent:
    assert event.campaign_id is not None  # every entry of a campaign stream names one
    return CampaignEvent(
        id=event.stream_id,
        type=CampaignEventType(event.type),
        occurred_at=datetime.fromisoformat(event.occurred_at),
        campaign_pk=event.campaign_id,
        loaders=loaders,
        task_pk=event.task_id,
    )


async def _check_cursor(
    redis: Redis, key: str, seen: tuple[int, int], given_as: str, timeout: float
) -> None:
    """Refuse a cursor the stream cannot honour, rather than replay from it with a gap."""
    async with unavailable_as_error(timeout), redis.pipeline(transaction=False) as pipe:
        pipe.xrange(key, count=1)
        pipe.xrevrange(key, count=1)
        oldest, newest = (entries_of(reply) for reply in await pipe.execute())
    if oldest and seen < parse(oldest[0].stream_id):
        raise BadUserInput(
            f"Events after this id are no longer kept; reload and subscribe without '{given_as}'",
            argument=given_as,
            reason="CURSOR_EXPIRED",
        )
    if not newest or seen > parse(newest[0].stream_id):
        # Not an id this stream issued (or Redis lost it): trusting it would skip every
        # event until the stream caught up with it.
        raise BadUserInput(
            f"No event with this id is known; reload and subscribe without '{given_as}'",
            argument=given_as,
            reason="CURSOR_EXPIRED",
        )


class _Deliveries:
    """A span per event handed to this subscriber, in the trace of the write that caused
    it and linked to this subscription (app/telemetry/event_links.py). It ends when the
    client was sent the event and the generator is asked for the next one."""

    def __init__(self, tracer: Tracer | None, field: str) -> None:
        self._tracer = tracer
        self._name = f"deliver {field}"
        # The span current while the subscription starts: its operation's, when traced.
        self._subscription = trace.get_current_span().get_span_context() if tracer else None

    def span(self, event: StreamEvent, *, replayed: bool) -> AbstractContextManager[object]:
        """The delivery's span, ended when the block ends; nothing when either the app or
        the write was not traced."""
        if self._tracer is None or event.traceparent is None:
            return _UNTRACED
        attributes = {
            EVENT_ID: event.event_id,
            "chimera.event.type": event.type,
            "messaging.message.id": event.stream_id,
            "chimera.event.replayed": replayed,
        }
        span = start_delivery(
            self._tracer, self._name, event.traceparent, self._subscription, attributes
        )
        return _UNTRACED if span is None else span


async def follow(
    info: Info,
    stream: str,
    after: str | None,
    wanted: Callable[[StreamEvent], bool],
    build: Callable[[StreamEvent, Loaders], T],
) -> AsyncGenerator[T, None]:
    """The events of one of the tenant's streams that ``wanted`` keeps: those after ``after``
    replayed first, then live ones, without a gap or a repeat across the seam."""
    ctx = info.context
    principal = ctx.require_principal()
    cursor = ctx.event_cursor  # over SSE: Last-Event-ID wins, and each event's id is noted
    given_as = "after"
    if cursor is not None and cursor.resume_after is not None:
        after, given_as = cursor.resume_after, "Last-Event-ID"
    seen = parse(after, given_as) if after is not None else None
    redis, timeout = ctx.stores.redis, ctx.settings.store_timeout_seconds
    key = STREAMS[stream](principal.tenant_id)
    subscriber = await ctx.events.subscribe(principal.tenant_id, stream)
    deliveries = _Deliveries(ctx.stores.tracer, info.field_name)
    metrics = ctx.stores.metrics
    if metrics is not None:
        metrics.subscriptions_open.add(1, {"stream": stream})
    try:
        if seen is not None and seen != (0, 0):
            await _check_cursor(redis, key, seen, given_as, timeout)
        if seen is not None:
            start = f"({after}"
            while True:
                async with unavailable_as_error(timeout):
                    chunk = entries_of(await redis.xrange(key, min=start, count=REPLAY_CHUNK))
                # Fresh loaders per chunk, shared with whoever replays the same chunk
                # now: each sees objects as new as its events, read once.
                replayed = ctx.events.replay_batch(principal.tenant_id, chunk, stream)
                for event in chunk:
                    seen = parse(event.stream_id)
                    if wanted(event):
                        if cursor is not None:
                            cursor.current = event.stream_id
                        with deliveries.span(event, replayed=True):
                            yield replayed.payload(event, ctx.fresh_loaders, build)
                        if metrics is not None:
                            metrics.events_delivered.add(1, {"stream": stream, "replayed": True})
                        # Cached loads and a socket with room to write never suspend: a
                        # long replay would hold the event loop from every other client.
                        await asyncio.sleep(0)
                if len(chunk) < REPLAY_CHUNK:
                    break
                start = f"({chunk[-1].stream_id}"
        while True:
            batch = await subscriber.queue.get()
            for event in batch.events:
                if seen is not None and parse(event.stream_id) <= seen:
                    continue  # already replayed
                seen = parse(event.stream_id)
                if wanted(event):
                    # The same object for every subscriber of this batch: what it names is
                    # read once, and equal operations are executed once (app/execution.py).
                    if cursor is not None:
                        cursor.current = event.stream_id
                    with deliveries.span(event, replayed=False):
                        yield batch.payload(event, ctx.fresh_loaders, build)
                    if metrics is not None:
                        metrics.events_delivered.add(1, {"stream": stream, "replayed": False})
            if subscriber.overflowed:
                # Cut now rather than push the batches it is behind on through a pipe that
                # could not take them: resuming replays them from the stream.
                raise SubscriberTooSlow(
                    "This subscription fell too far behind; resume with 'after'",
                    reason="SLOW_CONSUMER",
                    after=f"{seen[0]}-{seen[1]}" if seen else None,
                )
    finally:
        if metrics is not None:
            metrics.subscriptions_open.add(-1, {"stream": stream})
        await ctx.events.unsubscribe(subscriber)


@strawberry.type
class EventSubscriptions:
    @strawberry.subscription(
        description="Events of the caller's campaigns (or of one), live. Pass the id of the "
        "last event you saw as `after` to first receive everything since."
    )
    async def campaign_events(
        self, info: Info, campaign_id: strawberry.ID | None = None, after: str | None = None
    ) -> AsyncGenerator[CampaignEvent, None]:
        only: UUID | None = None
        if campaign_id is not None:
            only = decode_id(campaign_id, "Campaign")
            if await info.context.loaders.campaign_by_id.load(only) is None:
                raise NotFound("Campaign not found", argument="campaignId")
        async for event in follow(
            info,
            "campaign",
            after,
            lambda event: only is None or event.campaign_id == only,
            _event,
        ):
            yield event

    @strawberry.subscription(
        description="Task events of the caller's agents (or of one), live and resumable like "
        "campaignEvents. An agent token follows its own agent only."
    )
    async def agent_events(
        self, info: Info, agent_id: strawberry.ID | None = None, after: str | None = None
    ) -> AsyncGenerator[AgentEvent, None]:
        principal = info.context.require_principal()
        only: UUID | None = principal.agent_id
        if agent_id is not None:
            only = decode_id(agent_id, "Agent")
            check_agent_reach(info, only)
            if await info.context.loaders.agent_by_id.load(only) is None:
                raise NotFound("Agent not found", argument="agentId")
        async for event in follow(
            info,
            "agent",
            after,
            lambda event: only is None or event.agent_id == only,
            agent_event,
        ):
            yield event
