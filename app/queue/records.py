"""A task as the queue's scripts store it (a Redis hash), read into one immutable record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from app.events.stream_ids import as_text


def _moment(value: str) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: UUID
    agent_id: UUID
    campaign_id: UUID | None
    kind: str
    payload: str  # JSON text, as given
    priority: int
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    result: str | None  # JSON text
    not_before: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    lease_token: str
    seq: int

    def __getitem__(self, name: str) -> Any:
        """A record reads like a row, so GraphQL types declare its fields as columns."""
        return getattr(self, name)

    @classmethod
    def from_flat(cls, flat: Sequence[Any]) -> TaskRecord | None:
        """From HGETALL's reply (field, value, field, value...); None for a missing task."""
        if not flat:
            return None
        h = {as_text(flat[i]): as_text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return cls(
            id=UUID(h["id"]),
            agent_id=UUID(h["agent"]),
            campaign_id=UUID(h["campaign"]) if h.get("campaign") else None,
            kind=h["kind"],
            payload=h["payload"],
            priority=int(h["priority"]),
            status=h["status"],
            attempts=int(h["attempts"]),
            max_attempts=int(h["max_attempts"]),
            last_error=h.get("last_error") or None,
            result=h.get("result") or None,
            not_before=_moment(h.get("not_before", "")),
            created_at=_moment(h["created"]) or datetime.fromtimestamp(0, UTC),
            started_at=_moment(h.get("started", "")),
            finished_at=_moment(h.get("finished", "")),
            lease_expires_at=_moment(h.get("lease_expires", "")),
            lease_token=h.get("lease_token", ""),
            seq=int(h["seq"]),
        )
