"""Operations over Server-Sent Events: graphql-sse's "distinct connections" mode.

Dashboards behind proxies that refuse WebSockets still speak plain HTTP. A request with
``Accept: text/event-stream`` (POST with a JSON body, or GET with the query in the URL) runs
its operation on the same path as any other: authentication, persisted documents, cost and
rate limits, the tenant's event hub. Its results come back as ``next`` events, then one
``complete``; errors before execution are a ``next`` carrying them, as the protocol asks (a
4xx would leave a browser's EventSource with nothing to show).

What this module adds to Strawberry's transport:

- Every event of ``campaignEvents``/``agentEvents`` goes out with its stream id as the SSE
  ``id:``. A client that reconnects sends it back as ``Last-Event-ID`` (EventSource does so
  by itself) and the subscription resumes right after it, exactly as ``after`` would.
- An event the subscriber's rate limit refuses ends the stream, as over WebSocket.
- A consumer that cannot keep up is cut off with a coded error (``SLOW_CONSUMER``, with
  the id to resume after), never buffered without bound. One that reads too slowly for
  the events falls a thousand batches behind in the hub, which ends the subscription with
  that error in the stream (resolvers/events/subscriptions.py). One that stopped reading
  altogether is found by a write waiting ``CHIMERA_SSE_SEND_TIMEOUT_SECONDS`` for room: its
  subscription ends at once and the error waits a while more for it; the server never
  holds more for it than the socket's buffers.
- A comment line every keep-alive interval, so that idle proxies keep the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

from app.events.hub import SubscriberTooSlow

log = logging.getLogger(__name__)

SSE_PROTOCOL = "graphql-sse"
EVENT_STREAM = "text/event-stream"
HEADERS: Mapping[str, str] = {
    "content-type": f"{EVENT_STREAM}; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",  # nginx: pass each event on at once
}
HEARTBEAT = ": ping\n\n"
FAREWELL_SECONDS = 10.0  # how long a cut stream's last words wait for a slow reader
COMPLETE = "event: complete\ndata: \n\n"


@dataclass
class EventCursor:
    """Where one SSE subscription stands: the id it resumes after (``Last-Event-ID``), and
    the id of the event being sent, set by the subscription as it yields it."""

    resume_after: str | None = None
    current: str | None = None


def next_event(data: str, event_id: str | None = None) -> str:
    """One ``next`` event; ``data`` is compact JSON, which holds no line break."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: next\ndata: {data}\n\n"


# One item of an event stream: its text, and the event id it carries (None for others).
Chunk = tuple[str, str | None]


class EventStreamResponse:
    """Sends ``chunks`` as an event stream, with heartbeats, until they end or the client
    leaves; or, when a write has waited ``send_timeout`` for the client to take data, cuts
    it: ``chunks`` is closed at once (ending the subscription behind it), then the
    SLOW_CONSUMER error, naming the last event written, waits up to FAREWELL_SECONDS for a
    reader that is slow rather than gone; failing that, the connection is dropped."""

    def __init__(
        self,
        chunks: AsyncGenerator[Chunk, None],
        *,
        headers: Mapping[str, str],
        heartbeat_seconds: float,
        send_timeout: float,
        encode_json: Callable[[object], str],
        open_streams: set[asyncio.Event],
    ) -> None:
        self.open_streams = open_streams  # the app's, for end_event_streams
        self.chunks = chunks
        self.headers = headers
        self.heartbeat_seconds = heartbeat_seconds
        self.send_timeout = send_timeout
        self.encode_json = encode_json
        self.dropped = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(k.lower().encode(), v.encode()) for k, v in {**self.headers, **HEADERS}.items()]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        stopping = asyncio.Event()
        self.open_streams.add(stopping)
        streaming = asyncio.create_task(self._stream(send))
        leaving = asyncio.create_task(_disconnected(receive))
        ending = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({streaming, leaving, ending}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.open_streams.discard(stopping)
            for task in (streaming, leaving, ending):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.chunks.aclose()
        if stopping.is_set() and not leaving.done():
            # The server is stopping: the connection is closed unfinished, which clients
            # take for a network failure and reconnect (to another instance) with
            # Last-Event-ID. A clean end would tell graphql-sse's client it was done.
            self.dropped = True
            log.info("SSE stream ended by the server stopping; its client resumes elsewhere")
        if self.dropped:
            _DROPPED.set(True)  # for the server's log: this response was cut on purpose

    async def _stream(self, send: Send) -> None:
        written: str | None = None  # the id of the last event the socket took
        stalled = False
        async with contextlib.aclosing(
            _with_heartbeats(self.chunks, self.heartbeat_seconds)
        ) as chunks:
            async for text, event_id in chunks:
                message: Message = {"type": "http.response.body", "body": text.encode()}
                message["more_body"] = True
                try:
                    async with asyncio.timeout(self.send_timeout):
                        await send(message)
                except TimeoutError:
                    stalled = True
                    break
                written = event_id or written
        if stalled:
            await self._farewell(send, written)
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _farewell(self, send: Send, written: str | None) -> None:
        error = SubscriberTooSlow(
            "This stream's reader fell too far behind; reconnect with Last-Event-ID",
            reason="SLOW_CONSUMER",
            after=written,
        )
        body = {"errors": [{"message": error.message, "extensions": error.extensions}]}
        last = next_event(self.encode_json(body)) + COMPLETE
        try:
            async with asyncio.timeout(max(self.send_timeout, FAREWELL_SECONDS)):
                await send({"type": "http.response.body", "body": last.encode()})
        except TimeoutError:
            self.dropped = True
            log.info("SSE reader took no data for %.0f s: connection dropped", self.send_timeout)
        else:
            log.info("SSE reader took no data for %.0f s: stream cut", self.send_timeout)


def end_event_streams(app: object) -> int:
    """End every event stream ``app`` has open: a server stopping gracefully waits for its
    responses to finish, and an event stream never would. Returns how many there were."""
    streams: set[asyncio.Event] = getattr(getattr(app, "state", None), "event_streams", set())
    for stopping in streams:
        stopping.set()
    return len(streams)


# Whether the response of the request being handled was dropped on purpose (a context
# variable of the server's task for the request, which logs the incomplete response).
_DROPPED: ContextVar[bool] = ContextVar("chimera_sse_dropped", default=False)
_INCOMPLETE = "ASGI callable returned without completing response."


class _DeliberateDrops(logging.Filter):
    """Keeps uvicorn's ERROR about an incomplete response out of the log when the response
    is an event stream this module dropped on purpose (and logged at INFO itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_DROPPED.get() and record.getMessage() == _INCOMPLETE)


def quiet_deliberate_drops() -> None:
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DeliberateDrops) for f in server_log.filters):
        server_log.addFilter(_DeliberateDrops())


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _with_heartbeats(
    chunks: AsyncGenerator[Chunk, None], every: float
) -> AsyncGenerator[Chunk, None]:
    """``chunks``, with a heartbeat whenever none came for ``every`` seconds. The chunks are
    read by a task of their own, one ahead at most: waiting for one with a timeout must not
    cancel the generator that makes them."""
    ready: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        try:
            async for chunk in chunks:
                await ready.put(chunk)
            await ready.put(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await ready.put(exc)

    producer = asyncio.create_task(produce())
    try:
        while True:
            try:
                async with asyncio.timeout(every):
                    item = await ready.get()
            except TimeoutError:
                yield HEARTBEAT, None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        await chunks.aclose()
