"""A write's trace context, carried with its outbox events to the work they cause.

A mutation's events are published by the relay, embedded by the indexer and delivered to
subscribers later, by other tasks or other processes, so the ambient context cannot carry
the trace there: the event does. The request's ``traceparent`` (W3C Trace Context) is stored
in the outbox row (migration 0013) and copied into the stream entry (``tp``), and each
consumer continues from it:

- the relay's publish and the indexer's batch are spans of their own, the root of a trace,
  with a link to each event's write (a batch mixes many writes: OpenTelemetry's messaging
  conventions link a batch to its messages' creation contexts rather than pick one parent);
- a subscriber's delivery of one event is a span in the write's own trace (its parent is
  the write's context), linked to the subscription it was delivered to, so the trace of one
  ``updateCampaign`` shows the moment each dashboard received its event.

Only sampled writes are carried: an event of an unsampled request costs its consumers no
span at all, so the sampler bounds the consumers' tracing too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()
EVENT_ID = "chimera.event.id"


def current_traceparent() -> str | None:
    """The traceparent of the span running now, if it is being recorded and sampled."""
    span_context = trace.get_current_span().get_span_context()
    if not (span_context.is_valid and span_context.trace_flags.sampled):
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The remote span a stored traceparent names, or None if it names none."""
    if not traceparent:
        return None
    extracted = trace.get_current_span(_W3C.extract({"traceparent": traceparent}))
    span_context = extracted.get_span_context()
    return span_context if span_context.is_valid else None


def links_to_writes(events: Iterable[tuple[int, str | None]]) -> list[Link]:
    """A link to the write of each (event id, traceparent) that carries a trace context."""
    links = []
    for event_id, traceparent in events:
        span_context = span_context_of(traceparent)
        if span_context is not None:
            links.append(Link(span_context, {EVENT_ID: event_id}))
    return links


@contextmanager
def batch_span(
    tracer: Tracer | None,
    name: str,
    events: Iterable[tuple[int, str | None]],
    attributes: dict[str, Any],
) -> Iterator[Span | None]:
    """A span for a background batch, linked to the writes of its events, current while the
    batch runs so that its store calls nest under it; nothing when no event was traced.

    It starts from an empty context: the background loops run with the instrumentations
    suppressed (their idle polls are not worth a trace), and a traced batch is worth one.
    """
    links = links_to_writes(events) if tracer is not None else []
    if tracer is None or not links:
        yield None
        return
    span = tracer.start_span(
        name, context=context.Context(), kind=SpanKind.CONSUMER, links=links, attributes=attributes
    )
    token = context.attach(trace.set_span_in_context(span, context.Context()))
    try:
        yield span
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
        raise
    finally:
        context.detach(token)
        span.end()


def start_delivery(
    tracer: Tracer,
    name: str,
    traceparent: str | None,
    subscription: SpanContext | None,
    attributes: dict[str, Any],
) -> Span | None:
    """A span in the write's trace for one event handed to one subscriber, linked to the
    subscription's own span; None when the write was not traced. Not made current: it covers
    a generator's yield, which other code runs through. Used as a context manager, it ends
    with the block, an error status left out: a client that leaves mid-delivery is not a
    fault of the delivery."""
    write = span_context_of(traceparent)
    if write is None:
        return None
    parent = trace.set_span_in_context(trace.NonRecordingSpan(write), context.Context())
    links = [Link(subscription)] if subscription is not None and subscription.is_valid else []
    return tracer.start_span(
        name,
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )
