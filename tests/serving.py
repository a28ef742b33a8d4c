"""An app behind a real uvicorn inside the test process, configured as `chimera serve` does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette

from app.serving import ChimeraServer, server_config
from tests.processes import free_port


@asynccontextmanager
async def served(app: Starlette, port: int | None = None) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs (on ``port``, else a free one); yields its
    host:port."""
    port = port or free_port()
    config = server_config(
        app, app.state.settings, host="127.0.0.1", port=port, log_level="warning"
    )
    async with _serving(config):
        yield f"127.0.0.1:{port}"


@asynccontextmanager
async def served_asgi(app: Any) -> AsyncIterator[str]:
    """Serve any ASGI app (a peer service of a test) with uvicorn's defaults; yields its
    host:port."""
    port = free_port()
    async with _serving(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")):
        yield f"127.0.0.1:{port}"


@asynccontextmanager
async def _serving(config: uvicorn.Config) -> AsyncIterator[None]:
    config.lifespan = "off"
    server = ChimeraServer(config)
    # The test process keeps its own signal handling: uvicorn would otherwise take SIGINT and
    # SIGTERM for itself, and a stuck run could no longer be stopped.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task
