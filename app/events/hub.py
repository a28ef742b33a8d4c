"""Fan-out inside one app process: one Redis reader per tenant stream, many subscribers.

A blocking XREAD holds a Redis connection for as long as it waits, so a reader per
subscriber would need a connection per open socket; here 1,000 subscribers of one tenant
share one reader, and the reader stops when its last subscriber leaves. Each subscriber has
a bounded queue: one that cannot keep up is ended (and may resume with ``after``) rather
than growing without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from redis.asyncio import Redis

from app.errors import ChimeraError, ErrorCode
from app.events.stream_ids import as_text
from app.stopping import stop_task
from app.stores.redis import keys
from app.stores.redis.client import read_stream, unavailable_as_error

if TYPE_CHECKING:
    from loaders.registry import Loaders

log = logging.getLogger(__name__)

QUEUE_BATCHES = 1000
REPLAY_SHARE_SECONDS = 2.0
REPLAYS_KEPT = 32  # per tenant
T = TypeVar("T")


@dataclass(frozen=True)
class StreamEvent:
    stream_id: str
    event_id: int  # the outbox row's id; 0 for task events, written by the queue's scripts
    type: str
    campaign_id: UUID | None
    occurred_at: str  # ISO 8601
    agent_id: UUID | None = None
    task_id: UUID | None = None
    # The W3C traceparent of the write that caused it, when that write was traced.
    traceparent: str | None = None


@dataclass(eq=False)
class Batch:
    """Events read together from one tenant's stream, handed to each of its subscribers.

    A thousand dashboards of one tenant ask for the same campaign when an event arrives; the
    batch carries one set of loaders they all share, so that costs one query, not a thousand,
    and one payload object per event, so that subscribers running the same operation share
    its execution too (app/execution.py). Loaders depend on the tenant alone (never on a
    caller's role), which makes sharing them among one tenant's subscribers safe.
    """

    events: Sequence[StreamEvent]
    _loaders: Loaders | None = None
    _payloads: dict[str, Any] = field(default_factory=dict)

    def payload(
        self,
        event: StreamEvent,
        fresh_loaders: Callable[[], Loaders],
        build: Callable[[StreamEvent, Loaders], T],
    ) -> T:
        """The one object every subscriber of this batch yields for ``event``, built on the
        batch's loaders (made on first use)."""
        if event.stream_id not in self._payloads:
            if self._loaders is None:
                self._loaders = fresh_loaders()
            self._payloads[event.stream_id] = build(event, self._loaders)
        payload: T = self._payloads[event.stream_id]
        return payload


class TooManySubscriptions(ChimeraError):
    code = ErrorCode.RATE_LIMITED


class SubscriberTooSlow(ChimeraError):
    code = ErrorCode.STORE_UNAVAILABLE


@dataclass(eq=False)
class Subscriber:
    tenant_id: UUID
    stream: str = "campaign"
    queue: asyncio.Queue[Batch] = field(default_factory=lambda: asyncio.Queue(QUEUE_BATCHES))
    overflowed: bool = False


def _uuid(value: bytes | None) -> UUID | None:
    return UUID(as_text(value)) if value else None


def _moment(value: bytes) -> str:
    """The relay writes ISO 8601; the queue's scripts Redis's clock in milliseconds."""
    text = as_text(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC).isoformat()
    return text


def decode_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> StreamEvent:
    return StreamEvent(
        stream_id=as_text(entry_id),
        event_id=int(fields.get(b"event", b"0")),
        type=as_text(fields[b"type"]),
        campaign_id=_uuid(fields.get(b"campaign")),
        occurred_at=_moment(fields[b"at"]),
        agent_id=_uuid(fields.get(b"agent")),
        task_id=_uuid(fields.get(b"task")),
        traceparent=as_text(tp) if (tp := fields.get(b"tp")) else None,
    )


def entries_of(entries: Any) -> list[StreamEvent]:
    """XRANGE's reply (or one stream of XREAD's) as events."""
    return [decode_entry(entry_id, fields) for entry_id, fields in entries or []]


def streams_of(reply: Any) -> list[list[StreamEvent]]:
    """XREAD's reply, one list of events per stream that had any."""
    return [events for _stream, entries in reply or [] if (events := entries_of(entries))]


# A tenant's two streams: its campaigns' events, and its agents' task events.
STREAMS: dict[str, Callable[[UUID], str]] = {
    "campaign": keys.event_stream,
    "agent": keys.agent_event_stream,
}


class _TenantReader:
    def __init__(self, hub: StreamHub, tenant_id: UUID, stream: str, start_id: str) -> None:
        self.hub = hub
        self.tenant_id = tenant_id
        self.stream = stream
        self.last_id = start_id
        self.subscribers: set[Subscriber] = set()
        # Replayed chunks, shared by subscribers that resume from the same place (after a
        # restart, a tenant's dashboards all resume from the same last event).
        self.replays: OrderedDict[tuple[str, str, int], tuple[float, Batch]] = OrderedDict()
        self.task = asyncio.create_task(self._run(), name=f"events-{stream}-{tenant_id}")

    async def _run(self) -> None:
        key = STREAMS[self.stream](self.tenant_id)
        delay = 0.1
        while self.subscribers:
            try:
                reply = await read_stream(
                    self.hub.readers_redis, key, self.last_id, block_ms=self.hub.block_ms, count=500
                )
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "event reader for %s lost Redis (%s: %s); retrying",
                    self.tenant_id,
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for events in streams_of(reply):
                self.last_id = events[-1].stream_id
                batch = Batch(events)
                for subscriber in list(self.subscribers):
                    try:
                        subscriber.queue.put_nowait(batch)
                    except asyncio.QueueFull:
                        subscriber.overflowed = True
                        self.subscribers.discard(subscriber)


class StreamHub:
    def __init__(
        self,
        redis: Redis,
        readers: Redis,
        *,
        block_ms: int,
        per_tenant_cap: int,
        timeout: float = 5.0,
    ) -> None:
        self.redis = redis
        self.readers_redis = readers
        self.timeout = timeout
        self.block_ms = block_ms
        self.per_tenant_cap = per_tenant_cap
        self.readers: dict[tuple[UUID, str], _TenantReader] = {}

    def tenants(self) -> set[UUID]:
        """Tenants with a reader of any of their streams here."""
        return {tenant_id for tenant_id, _stream in self.readers}

    async def subscribe(self, tenant_id: UUID, stream: str = "campaign") -> Subscriber:
        """Join the fan-out of one of the tenant's streams (``campaign`` or ``agent``)."""
        reader = self.readers.get((tenant_id, stream))
        if reader is not None and len(reader.subscribers) >= self.per_tenant_cap:
            raise TooManySubscriptions(
                f"This tenant already has {self.per_tenant_cap} live subscriptions here"
            )
        subscriber = Subscriber(tenant_id, stream)
        if reader is None or reader.task.done():
            # Start where the stream ends now: everything after this point is delivered live.
            async with unavailable_as_error(self.timeout):
                tail = entries_of(await self.redis.xrevrange(STREAMS[stream](tenant_id), count=1))
            start = tail[0].stream_id if tail else "0-0"
            reader = self.readers.get((tenant_id, stream))  # another may have won the race
            if reader is None or reader.task.done():
                reader = _TenantReader(self, tenant_id, stream, start)
                self.readers[(tenant_id, stream)] = reader
        reader.subscribers.add(subscriber)
        return subscriber

    def replay_batch(
        self, tenant_id: UUID, chunk: Sequence[StreamEvent], stream: str = "campaign"
    ) -> Batch:
        """The batch for a replayed chunk, shared with other subscribers of the tenant that
        read the very same entries within REPLAY_SHARE_SECONDS.

        Reuse keeps each event's campaign at least as new as the event: the first reader's
        loaders read the campaigns after that chunk was committed. The time limit bounds
        how much newer state a later reader could miss; the events that carry it follow.
        """
        reader = self.readers.get((tenant_id, stream))
        if reader is None or not chunk:
            return Batch(chunk)
        key = (chunk[0].stream_id, chunk[-1].stream_id, len(chunk))
        now = time.monotonic()
        cached = reader.replays.get(key)
        if cached is not None and now - cached[0] < REPLAY_SHARE_SECONDS:
            return cached[1]
        batch = Batch(chunk)
        reader.replays[key] = (now, batch)
        reader.replays.move_to_end(key)
        while len(reader.replays) > REPLAYS_KEPT:
            reader.replays.popitem(last=False)
        return batch

    async def unsubscribe(self, subscriber: Subscriber) -> None:
        reader = self.readers.get((subscriber.tenant_id, subscriber.stream))
        if reader is None:
            return
        reader.subscribers.discard(subscriber)
        if not reader.subscribers:
            self.readers.pop((subscriber.tenant_id, subscriber.stream), None)
            reader.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader.task
            if not self.readers:
                # A reader whose XREAD had returned left its connection idle in the pool,
                # one whose XREAD was cancelled mid-wait dropped it: which one depends on
                # timing. With no reader left, none is needed; close the idle ones, so that
                # the subscriptions' ending gives every connection back either way.
                # (A cluster client has a pool per node and no such call: its idle reader
                # connections, one per node at most, stay open.)
                pool = getattr(self.readers_redis, "connection_pool", None)
                if pool is not None:
                    await pool.disconnect(inuse_connections=False)

    async def close(self) -> None:
        readers = list(self.readers.values())
        self.readers.clear()
        for reader in readers:
            reader.subscribers.clear()
        await asyncio.gather(*(stop_task(reader.task) for reader in readers))
