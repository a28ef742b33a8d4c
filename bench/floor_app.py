"""The floor (setup D of bench/dashboard.py): query B's answer with nothing but the work itself.

A raw ASGI app, no framework and no GraphQL: for a POST it checks the bearer token (the app
must, so the floor does too, with the app's own ``decode_token``), reads ``variables.first``
and runs by hand the three statements the app's loaders run for query B, with asyncpg and
prepared statements: the campaign page (``LIMIT first + 1``), the agents of those campaigns
ranked per campaign with ``row_number()`` and cut at 6, and their media cut at 5 (the last
two at once, on two pooled connections, as the loaders do in one tick). It then builds the
exact JSON the app returns for query B (global ids, cursors, budget as a string, ISO dates)
and encodes it with orjson. The bench compares this answer with the app's, field by field,
before it measures anything.

Whatever the app spends per request beyond this is the cost of its layers: GraphQL parsing
and validation (cached), execution, DataLoaders, SQLAlchemy, JSON. The ratio of the two is
what the bench reports.

Served by uvicorn like the app: ``uvicorn bench.floor_app:create_app --factory`` with
``DATABASE_URL`` (asyncpg form or ``postgresql+asyncpg://``) and ``CHIMERA_AUTH_SECRET``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from app.auth import decode_token
from app.errors import ChimeraError
from app.ids import encode_id
from app.pagination import MAX_PAGE_SIZE, encode_cursor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

AGENTS_PER_CAMPAIGN = 5  # query B's `agents(first: 5)`
MEDIA_PER_CAMPAIGN = 4  # query B's `media(first: 4)`
CAMPAIGN_ORDER = "created_at:asc"  # the cursor's ordering name, as resolvers/listing.py writes it

# The loaders' statements (loaders/postgres/pages.py, membership.py, media.py) by hand: the
# same columns, filters, window and cuts. Parent ids go in as one array parameter, so each
# statement is prepared once whatever the page size.
CAMPAIGN_PAGE = """
SELECT id, tenant_id, name, goal, status, budget, starts_at, ends_at, created_at, updated_at
FROM campaign
WHERE tenant_id = $1
ORDER BY created_at, id
LIMIT $2
"""
AGENTS_BY_CAMPAIGN = """
SELECT * FROM (
    SELECT agent.id, agent.tenant_id, agent.name, agent.persona, agent.status,
           agent.created_at, agent.updated_at,
           campaign_agent.campaign_id AS parent_id, campaign_agent.assigned_at AS edge_at,
           row_number() OVER (PARTITION BY campaign_agent.campaign_id
                              ORDER BY campaign_agent.assigned_at, agent.id) AS rank
    FROM campaign_agent
    JOIN agent ON agent.id = campaign_agent.agent_id AND agent.tenant_id = campaign_agent.tenant_id
    WHERE campaign_agent.tenant_id = $1 AND campaign_agent.campaign_id = ANY($2::uuid[])
) AS ranked
WHERE rank <= $3
ORDER BY parent_id, rank
"""
MEDIA_BY_CAMPAIGN = """
SELECT * FROM (
    SELECT media_asset.*, media_asset.campaign_id AS parent_id,
           row_number() OVER (PARTITION BY media_asset.campaign_id
                              ORDER BY media_asset.created_at, media_asset.id) AS rank
    FROM media_asset
    WHERE media_asset.tenant_id = $1 AND media_asset.campaign_id = ANY($2::uuid[])
) AS ranked
WHERE rank <= $3
ORDER BY parent_id, rank
"""


def _asyncpg_dsn(url: str) -> str:
    """The app's ``postgresql+asyncpg://`` URL in the form asyncpg itself takes."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _grouped(rows: list[asyncpg.Record]) -> dict[UUID, list[asyncpg.Record]]:
    groups: dict[UUID, list[asyncpg.Record]] = {}
    for row in rows:
        groups.setdefault(row["parent_id"], []).append(row)
    return groups


def _agent(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "node": {
            "id": encode_id("Agent", row["id"]),
            "name": row["name"],
            "persona": row["persona"],
            "status": row["status"],
        }
    }


def _media(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "node": {
            "id": encode_id("MediaAsset", row["id"]),
            "kind": row["kind"],
            "contentType": row["content_type"],
            "filename": row["filename"],
            "sizeBytes": row["size_bytes"],
            "status": row["status"],
            "createdAt": row["created_at"].isoformat(),
        }
    }


def dashboard(
    campaigns: list[asyncpg.Record],
    first: int,
    agents: dict[UUID, list[asyncpg.Record]],
    media: dict[UUID, list[asyncpg.Record]],
) -> dict[str, Any]:
    """Query B's ``data``, shaped and formatted exactly as the app prints it."""
    edges = []
    for row in campaigns[:first]:
        edges.append(
            {
                "cursor": encode_cursor(CAMPAIGN_ORDER, row["created_at"], row["id"]),
                "node": {
                    "id": encode_id("Campaign", row["id"]),
                    "name": row["name"],
                    "goal": row["goal"],
                    "status": row["status"],
                    "budget": str(row["budget"]),
                    "startsAt": _iso(row["starts_at"]),
                    "endsAt": _iso(row["ends_at"]),
                    "createdAt": row["created_at"].isoformat(),
                    "updatedAt": row["updated_at"].isoformat(),
                    "agents": {
                        "edges": [
                            _agent(a) for a in agents.get(row["id"], [])[:AGENTS_PER_CAMPAIGN]
                        ]
                    },
                    "media": {
                        "edges": [_media(m) for m in media.get(row["id"], [])[:MEDIA_PER_CAMPAIGN]]
                    },
                },
            }
        )
    return {
        "campaigns": {
            "edges": edges,
            "pageInfo": {
                "hasNextPage": len(campaigns) > first,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }
    }


class FloorApp:
    """The ASGI callable: lifespan opens and closes the pool, POST answers query B."""

    def __init__(self, dsn: str, secret: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.secret = secret
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=2,
                        max_size=self.pool_size,
                        # asyncpg's default reset sends a statement on every release; the
                        # floor keeps no session state, so it has nothing to reset.
                        reset=_no_reset,
                    )
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET" and scope["path"] == "/healthz":
            await _respond(send, 200, b'{"status":"ok"}')
            return
        if scope["method"] != "POST":
            await _respond(send, 405, b'{"errors":[{"message":"POST only"}]}')
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer":
                raise PermissionError("no bearer token")
            principal = decode_token(self.secret, token.strip())
            request = orjson.loads(body)
            first = int((request.get("variables") or {}).get("first", 20))
            if not 0 <= first <= MAX_PAGE_SIZE:
                raise ValueError("first out of range")
        except (ChimeraError, PermissionError, ValueError, TypeError, AttributeError) as exc:
            message_ = {"errors": [{"message": f"{type(exc).__name__}: {exc}"}]}
            await _respond(send, 400, orjson.dumps(message_))
            return
        data = await self._dashboard(principal.tenant_id, first)
        await _respond(send, 200, orjson.dumps({"data": data}))

    async def _dashboard(self, tenant_id: UUID, first: int) -> dict[str, Any]:
        assert self.pool is not None
        campaigns = await self.pool.fetch(CAMPAIGN_PAGE, tenant_id, first + 1)
        ids = [row["id"] for row in campaigns[:first]]
        agents, media = await asyncio.gather(
            self.pool.fetch(AGENTS_BY_CAMPAIGN, tenant_id, ids, AGENTS_PER_CAMPAIGN + 1),
            self.pool.fetch(MEDIA_BY_CAMPAIGN, tenant_id, ids, MEDIA_PER_CAMPAIGN + 1),
        )
        return dashboard(campaigns, first, _grouped(agents), _grouped(media))


async def _no_reset(_connection: asyncpg.Connection) -> None:
    return None


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app() -> FloorApp:
    """The factory uvicorn calls (``--factory``); configuration from the environment."""
    return FloorApp(
        _asyncpg_dsn(os.environ["DATABASE_URL"]),
        os.environ["CHIMERA_AUTH_SECRET"],
        pool_size=int(os.environ.get("CHIMERA_DB_POOL_SIZE", "10")),
    )
