"""How the `chimera` command's processes log: one format, one threshold, uvicorn included.

Each line carries a timestamp (ISO 8601, milliseconds, UTC offset), so that a log read after
the fact says when, and the threshold comes from ``CHIMERA_LOG_LEVEL``. uvicorn installs its
own handlers and format ("INFO:     ..."); they are replaced so its lines look like every
other. Structured (JSON) output is another issue's job.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class TimestampFormatter(logging.Formatter):
    """Local time in ISO 8601 with milliseconds and the UTC offset, e.g.
    ``2026-12-02T09:47:41.123+00:00``: sortable, and unambiguous across time zones."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(timespec="milliseconds")


def configure_logging(level: str) -> None:
    """Send every logger's lines to stderr in one format, at ``level`` and above.

    Called once the settings are read, and again after uvicorn's Config (which applies its
    own logging set-up when it is built) so that its loggers propagate to ours.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TimestampFormatter(FORMAT))
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
    # Alembic narrates every connection; commands that apply migrations raise it to INFO
    # (narrate()) to say what they applied.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def narrate(name: str) -> None:
    """Let ``name`` log at INFO, unless the configured threshold is higher."""
    logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
