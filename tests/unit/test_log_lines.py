"""What a log line may say: the request's context and trace, never a secret."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from app.log_context import RequestLog, current_request
from app.logs import JsonLines, RequestContext, TimestampFormatter, scrub

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLXBhcnQ"
KEY = "chk_ABCDEFGHJKLM_" + "s3cr3t-part-of-the-key-0123456789abcdef"
PRESIGNED = (
    "https://bucket.s3.amazonaws.com/m/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20261203%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Signature=0123456789abcdef0123456789abcdef"
)
LOCAL = "http://127.0.0.1:8000/media/t/a.png?expires=1764700000&sig=deadbeefcafe"
DSN = "postgresql+asyncpg://chimera:hunter2@db:5432/chimera"


def test_secrets_of_every_kind_are_scrubbed_from_a_line() -> None:
    line = scrub(f"Authorization: Bearer {JWT}; token {JWT}; key {KEY}; {PRESIGNED} {LOCAL} {DSN}")
    for secret in (
        JWT,
        "s3cr3t-part",
        "0123456789abcdef0123",
        "AKIAEXAMPLE",
        "deadbeef",
        "hunter2",
    ):
        assert secret not in line, (secret, line)
    # What identifies without granting stays: the key's prefix, the object, the host.
    assert "chk_ABCDEFGHJKLM_" in line and "/m/a.png" in line and "@db:5432" in line


def record(message: str, *args: object) -> logging.LogRecord:
    made = logging.LogRecord("chimera.test", logging.WARNING, __file__, 1, message, args, None)
    assert RequestContext().filter(made)
    return made


def test_a_json_line_carries_the_request_context_and_trace_and_no_secret() -> None:
    tracer = TracerProvider().get_tracer("test")
    token = current_request.set(RequestLog(tenant="acme", operation="Dashboard"))
    try:
        with tracer.start_as_current_span("request") as span:
            line = JsonLines().format(record("refused %s", f"Bearer {JWT}"))
            context = span.get_span_context()
    finally:
        current_request.reset(token)
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING" and parsed["logger"] == "chimera.test"
    assert parsed["tenant"] == "acme" and parsed["operation"] == "Dashboard"
    assert parsed["trace_id"] == format(context.trace_id, "032x")
    assert parsed["span_id"] == format(context.span_id, "016x")
    assert parsed["timestamp"][10] == "T"
    assert JWT not in line and parsed["message"] == "refused Bearer [redacted]"


def test_a_readable_line_ends_with_the_context_it_has_and_none_it_lacks() -> None:
    formatter = TimestampFormatter("%(levelname)s %(name)s: %(message)s")
    assert formatter.format(record("plain")) == "WARNING chimera.test: plain"
    token = current_request.set(RequestLog(tenant="acme"))
    try:
        line = formatter.format(record("with %s", LOCAL))
    finally:
        current_request.reset(token)
    assert line.endswith("[tenant=acme]") and "deadbeef" not in line
