"""Waking the relay when an outbox event commits, instead of on its next poll.

Every insert into the outbox notifies `chimera_outbox` (migration 0004), and PostgreSQL
delivers it when the transaction commits. The relay holds one connection that LISTENs;
a notification ends its wait at once. If that connection cannot be had or dies (a
restart, or a pooler in transaction mode that cannot LISTEN), the relay polls as it did
before, every `idle_seconds`, and tries to listen again every RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

CHANNEL = "chimera_outbox"
RETRY_SECONDS = 5.0


class OutboxWakeup:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.event = asyncio.Event()
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._retry_at = 0.0

    async def ensure(self) -> bool:
        """Whether notifications are being received; (re)connects when due."""
        if self._driver is not None and not self._driver.is_closed():
            return True
        await self.close()
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            return False
        self._retry_at = now + RETRY_SECONDS
        conn: AsyncConnection | None = None
        try:
            conn = await self.engine.connect()
            driver: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's
            await driver.add_listener(CHANNEL, self._notified)
        except Exception as exc:
            log.warning("relay cannot LISTEN (%s); polling instead", exc)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            return False
        self._conn, self._driver = conn, driver
        self.event.set()  # whatever committed while nobody listened: look now
        return True

    def _notified(self, *_: object) -> None:
        self.event.set()

    async def wait(self, timeout: float) -> None:
        """Until a notification (possibly one already received) or ``timeout``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.event.wait()

    async def close(self) -> None:
        conn, driver = self._conn, self._driver
        self._conn = self._driver = None
        if driver is not None and not driver.is_closed():
            with contextlib.suppress(Exception):
                await driver.remove_listener(CHANNEL, self._notified)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
