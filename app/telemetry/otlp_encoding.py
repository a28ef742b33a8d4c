"""Spans to OTLP protobuf bytes, written directly rather than through message objects.

The OTLP exporter's own encoder builds a protobuf object for every span, attribute key,
value and status, then serializes them: about 36 us a span in this process, more than it
costs to make the span, and half of what tracing costs a request. Spans here are
repetitive: the same attribute pairs (``db.system: postgresql``, the peer's address, the
loader's store) recur on every request. So this encoder writes the wire format itself and
remembers the encoded bytes of each scalar attribute pair it has seen (a bounded cache), so
that a span costs a few byte joins. The output is the same message, field for field
(tests/unit/test_otlp_encoding.py parses both and compares), and everything the message
can hold is written: events, links, trace state, status, dropped counts, flags and
attributes of every OTLP type.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.span import TraceState

log = logging.getLogger("chimera.telemetry")

# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
_SPAN_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
# SpanFlags: the context's remoteness is known (0x100), and it is remote (0x200).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack

# Scalar attribute pairs seen before, encoded as KeyValue fields (field number included:
# the same pair is field 9 of a span, 3 of an event, 4 of a link, 1 of a resource).
_PAIRS_REMEMBERED = 4096
_pairs: dict[tuple[int, str, type, Any], bytes] = {}


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value] if value >= 0 else _varint(value + (1 << 64))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: bytes, strings and embedded messages (field numbers here
    are below 16, so a tag is one byte)."""
    size = len(payload)
    return (
        _ONE_BYTE[number << 3 | 2] + (_ONE_BYTE[size] if size < 0x80 else _varint(size)) + payload
    )


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode("utf-8", "surrogatepass")) if value else b""


def _uint(number: int, value: int) -> bytes:
    return _ONE_BYTE[number << 3] + _varint(value) if value else b""


def _any_value(value: Any) -> bytes:
    """An AnyValue message's fields (its payload, without tag or length)."""
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(1, value.encode("utf-8", "surrogatepass"))
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise ValueError(f"{value} does not fit an OTLP int_value (64 bits)")
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if value is None:
        return b""
    if isinstance(value, Sequence):
        return _field(5, b"".join(_field(1, _any_value(item)) for item in value))
    if isinstance(value, Mapping):
        return _field(6, b"".join(_field(1, _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: Any) -> bytes:
    """A KeyValue message's payload."""
    return _text(1, key) + _field(2, _any_value(value))


def _attributes(number: int, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a KeyValue field ``number``: scalar pairs from the cache."""
    if not attributes:
        return b""
    parts = []
    # The SDK's BoundedAttributes keeps its pairs in a dict; iterating the mapping itself
    # goes through Python-level __iter__ and __getitem__ for every key.
    pairs = getattr(attributes, "_dict", attributes)
    for key, value in pairs.items():
        kind = type(value)
        scalar = kind is str or kind is int or kind is bool or kind is float
        cache_key = (number, key, kind, value) if scalar else None
        encoded = _pairs.get(cache_key) if scalar else None  # type: ignore[arg-type]
        if encoded is None:
            try:
                encoded = _field(number, _key_value(key, value))
            except Exception:  # as the library's encoder: an attribute it cannot write is dropped
                log.exception("Failed to encode attribute %s", key)
                continue
            if cache_key is not None:
                if len(_pairs) >= _PAIRS_REMEMBERED:
                    _pairs.clear()
                _pairs[cache_key] = encoded
        parts.append(encoded)
    return b"".join(parts)


def _trace_state(number: int, state: TraceState | None) -> bytes:
    if not state:
        return b""
    return _text(number, ",".join(f"{key}={value}" for key, value in state.items()))


def _flags(tag: bytes, context: SpanContext | None) -> bytes:
    remote = context is not None and context.is_remote
    return tag + (_REMOTE if remote else _LOCAL)


_LOCAL = _FIXED32(_HAS_IS_REMOTE)
_REMOTE = _FIXED32(_HAS_IS_REMOTE | _IS_REMOTE)
_SPAN_FLAGS_TAG = b"\x85\x01"  # field 16, fixed32: a two-byte tag
_LINK_FLAGS_TAG = b"\x35"  # field 6, fixed32


def encode_span(span: ReadableSpan) -> bytes:
    """One Span message's payload."""
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        _trace_state(3, context.trace_state),
        b"\x22\x08" + parent.span_id.to_bytes(8, "big") if parent is not None else b"",
        _text(5, span.name),
        _uint(6, _SPAN_KIND[span.kind]),
        b"\x39" + _FIXED64(span.start_time or 0) if span.start_time else b"",
        b"\x41" + _FIXED64(span.end_time or 0) if span.end_time else b"",
        _attributes(9, span.attributes),
        _uint(10, span.dropped_attributes),
    ]
    for event in span.events or ():
        parts.append(
            _field(
                11,
                (b"\x09" + _FIXED64(event.timestamp) if event.timestamp else b"")
                + _text(2, event.name)
                + _attributes(3, event.attributes)
                + _uint(4, event.dropped_attributes),
            )
        )
    parts.append(_uint(12, span.dropped_events))
    for link in span.links or ():
        parts.append(
            _field(
                13,
                b"\x0a\x10"
                + link.context.trace_id.to_bytes(16, "big")
                + b"\x12\x08"
                + link.context.span_id.to_bytes(8, "big")
                + _attributes(4, link.attributes)
                + _uint(5, link.dropped_attributes)
                + _flags(_LINK_FLAGS_TAG, link.context),
            )
        )
    parts.append(_uint(14, span.dropped_links))
    status = span.status
    if status is not None:
        parts.append(
            _field(15, _text(2, status.description or "") + _uint(3, status.status_code.value))
        )
    parts.append(_flags(_SPAN_FLAGS_TAG, parent))
    return b"".join(parts)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    attributes: Mapping[str, Any] | None = scope.attributes
    return _text(1, scope.name) + _text(2, scope.version or "") + _attributes(3, attributes)


# Encoded spans of one instrumentation scope, and the scopes of one resource.
_Scoped = tuple[InstrumentationScope | None, list[bytes]]
_ByResource = tuple[Resource, dict[int, _Scoped]]


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest holding ``spans``, grouped by resource and scope in the
    order they first appear, as the library's encoder groups them. Grouped by identity, not
    equality (hashing a Resource serializes its attributes to JSON, on every span): the
    spans of one provider share its Resource and scope objects."""
    grouped: dict[int, _ByResource] = {}
    for span in spans:
        resource = span.resource
        by_resource = grouped.get(id(resource))
        if by_resource is None:
            by_resource = grouped[id(resource)] = (resource, {})
        scope = span.instrumentation_scope or None
        scoped = by_resource[1].get(id(scope))
        if scoped is None:
            scoped = by_resource[1][id(scope)] = (scope, [])
        scoped[1].append(_field(2, encode_span(span)))
    out = []
    for resource, scopes in grouped.values():
        scope_spans = b"".join(
            _field(
                2,
                _field(1, _scope(scope))
                + b"".join(encoded)
                + _text(3, (scope.schema_url or "") if scope is not None else ""),
            )
            for scope, encoded in scopes.values()
        )
        body = (
            _field(1, _attributes(1, resource.attributes))
            + scope_spans
            + _text(3, resource.schema_url or "")
        )
        out.append(_field(1, body))
    return b"".join(out)
