"""How the `chimera` command's processes log: one format, one threshold, uvicorn included.

Two formats of the same records. Readable lines in development::

    2026-12-02T09:58:40.811+00:00 INFO chimera.access: POST /graphql 200 12.4 ms cost=217 [tenant=demo operation=Dashboard trace=4bf9...]

and in production (``CHIMERA_LOG_FORMAT=json`` anywhere) one JSON object per line for a log
pipeline, by python-json-logger: ``timestamp``, ``level``, ``logger``, ``message``, and
whatever the line carries (``tenant``, ``operation``, ``trace_id``, ``span_id``, the access
line's ``status``, ``duration_ms`` and ``cost``). The tenant and operation come from the
request being served (app/log_context.py), the trace and span ids from OpenTelemetry's
current span, so a line links to its trace.

Whatever is written is scrubbed last, whichever format: bearer tokens, JWTs, API keys,
presigned URLs' signatures and credentials in URLs never reach a log, even when an exception
message or a library's line carries them.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from app.log_context import current_request

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
CONTEXT_FIELDS = ("tenant", "operation", "trace_id", "span_id")

_SECRETS = [
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[jwt redacted]"),
    (re.compile(r"\bchk_([A-Za-z0-9]{12})_[A-Za-z0-9_-]+"), r"chk_\1_[redacted]"),
    (
        re.compile(
            r"(?i)([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|sig)=)[^&\s\"']+"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s\"']+:)[^@\s\"']+@"), r"\1[redacted]@"),
]


def scrub(text: str) -> str:
    """``text`` with every secret-shaped part replaced by a marker."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class RequestContext(logging.Filter):
    """Adds the served request's tenant and operation, and the current trace and span ids,
    to every record logged while it is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request.get()
        if request is not None:
            if request.tenant is not None:
                record.tenant = request.tenant
            if request.operation is not None:
                record.operation = request.operation
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class TimestampFormatter(logging.Formatter):
    """Readable lines: local time in ISO 8601 with milliseconds and the UTC offset, e.g.
    ``2026-12-02T09:47:41.123+00:00`` (sortable, unambiguous across time zones), then the
    request's context in brackets when there is one; scrubbed."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso(record.created)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        ]
        if context:
            line = f"{line} [{' '.join(context)}]"
        return scrub(line)


class JsonLines(JsonFormatter):
    """One JSON object per record; scrubbed."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso(record.created)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # uvicorn's access records carry their parts as ``args`` already in the message.
        log_data.pop("color_message", None)
        return log_data


def configure_logging(level: str, *, json_lines: bool = False, uvicorn_access: bool = True) -> None:
    """Send every logger's lines to stderr in one format, at ``level`` and above.

    Called once the settings are read, and again after uvicorn's Config (which applies its
    own logging set-up when it is built) so that its loggers propagate to ours; without
    ``uvicorn_access`` its access lines stay silent (the app writes its own).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if json_lines else TimestampFormatter(FORMAT))
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        for old in uvicorn_logger.handlers[:]:
            uvicorn_logger.removeHandler(old)
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
    if not uvicorn_access:
        # uvicorn writes access lines only when this logger has handlers to reach.
        logging.getLogger("uvicorn.access").propagate = False
    # Alembic narrates every connection; commands that apply migrations raise it to INFO
    # (narrate()) to say what they applied.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def narrate(name: str) -> None:
    """Let ``name`` log at INFO, unless the configured threshold is higher."""
    logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
