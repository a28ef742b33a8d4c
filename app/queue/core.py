"""The agents' task queue: enqueue, claim under a lease, heartbeat, complete, fail, cancel.

Every call is one Lua script (app/queue/scripts.py), so each state change is atomic and
costs one round trip. Tasks live in Redis only: the queue is Chimera's high-velocity store
(ADR 0023 says why not PostgreSQL, and why sorted sets rather than a Stream's consumer
group). Inputs are checked here, so the API, the CLI and the seed share the same limits.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from redis.asyncio import Redis

from app.errors import (
    BadUserInput,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    LeaseExpired,
    NotFound,
)
from app.events.stream_ids import as_text
from app.queue import scripts
from app.queue.records import TaskRecord
from app.stores.redis import keys
from app.stores.redis.client import unavailable_as_error
from app.stores.redis.replicated import call_replicated
from app.stores.redis.scripts import LuaScript
from app.validation import check_moment, clean_idempotency_key

PAYLOAD_MAX_BYTES = 64 * 1024
RESULT_MAX_BYTES = 64 * 1024
ERROR_MAX_CHARS = 2000
KIND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
PRIORITY_RANGE = (0, 100)
DEFAULT_PRIORITY = 50
MAX_ATTEMPTS_RANGE = (1, 25)
DEFAULT_MAX_ATTEMPTS = 3
NOT_BEFORE_HORIZON = timedelta(days=30)
LEASE_SECONDS_RANGE = (1, 3600)
DEFAULT_LEASE_SECONDS = 60
CLAIM_MAX = 100
# An enqueue's idempotency key names its task for a day: a retry within it returns the task.
KEY_TTL_SECONDS = 24 * 3600
# Finished (SUCCEEDED, FAILED, CANCELLED) tasks are kept this long, then deleted. DEAD tasks
# are kept until an admin retries or cancels them: they are the dead letters.
RETENTION_MS = 7 * 24 * 3600 * 1000
BACKOFF_BASE_MS = 1000
BACKOFF_CAP_MS = 3600 * 1000
EVENTS_MAXLEN = 100_000


@dataclass(frozen=True)
class NewTask:
    agent_id: UUID
    campaign_id: UUID | None
    kind: str
    payload: Any
    priority: int = DEFAULT_PRIORITY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    not_before: datetime | None = None


@dataclass(frozen=True)
class Lease:
    task: TaskRecord
    token: str


@dataclass(frozen=True)
class Claimed:
    leases: list[Lease]
    next_due_ms: int | None  # when the agent's next delayed task is due, if any


def json_text(value: Any, name: str, limit: int) -> str:
    """Canonical JSON (sorted keys, no spaces), refused past ``limit`` bytes."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadUserInput(f"'{name}' must be JSON", field=name) from exc
    if len(text.encode()) > limit:
        raise BadUserInput(f"'{name}' must be at most {limit} bytes of JSON", field=name)
    return text


def _in_range(value: int, bounds: tuple[int, int], name: str) -> int:
    low, high = bounds
    if not low <= value <= high:
        raise BadUserInput(f"'{name}' must be between {low} and {high}", field=name)
    return value


def _not_before_ms(moment: datetime | None) -> int:
    if moment is None:
        return 0
    check_moment("notBefore", moment, field="notBefore")
    if moment - datetime.now(UTC) > NOT_BEFORE_HORIZON:
        raise BadUserInput(
            f"'notBefore' must be within {NOT_BEFORE_HORIZON.days} days", field="notBefore"
        )
    return max(0, int(moment.timestamp() * 1000))


def _record(flat: Any) -> TaskRecord:
    record = TaskRecord.from_flat(flat)
    if record is None:
        raise NotFound("Task not found")
    return record


def _refusal(reply: Sequence[Any]) -> None:
    verdict = as_text(reply[0])
    if verdict in ("OK", "SETTLED", "CREATED", "EXISTING"):
        return
    if verdict == "NOT_FOUND":
        raise NotFound("Task not found", argument="id")
    if verdict == "FORBIDDEN":
        raise Forbidden("This task belongs to another agent")
    if verdict == "LEASE_EXPIRED":
        raise LeaseExpired(
            "This lease no longer holds the task (it expired, was cancelled, or the task was "
            "claimed again); nothing was changed"
        )
    if verdict == "CONFLICT":
        status = _record(reply[1]).status
        raise Conflict(f"The task is {status}", status=status)
    if verdict == "REUSED":
        raise IdempotencyKeyReused(
            "This idempotency key was used for a different task", field="idempotencyKey"
        )
    raise RuntimeError(f"unexpected queue reply {verdict!r}")


class TaskQueue:
    """One tenant's queue, bound like a loader: it can only name that tenant's keys."""

    def __init__(
        self,
        redis: Redis,
        tenant_id: UUID,
        timeout: float,
        *,
        replicas: int = 0,
        replica_timeout_ms: int = 1000,
    ) -> None:
        self.redis = redis
        self.tenant_id = tenant_id
        self.timeout = timeout
        self.prefix = keys.tenant_prefix(tenant_id)
        # Replicas that must hold a new task before enqueue answers (CHIMERA_TASK_REPLICAS).
        self.replicas = replicas
        self.replica_timeout_ms = replica_timeout_ms

    async def _run(self, script: LuaScript, key: str, *args: str | int) -> Any:
        async with unavailable_as_error(self.timeout):
            return await script(self.redis, [key], [self.prefix, EVENTS_MAXLEN, *args])

    async def enqueue(self, task: NewTask, idempotency_key: str) -> tuple[TaskRecord, bool]:
        """The task, and whether this call created it (False: a retry of the same key)."""
        if not KIND.fullmatch(task.kind):
            raise BadUserInput(
                "'kind' must be 1 to 100 letters, digits or _ . : - (starting with a letter "
                "or digit)",
                field="kind",
            )
        payload = json_text(task.payload, "payload", PAYLOAD_MAX_BYTES)
        priority = _in_range(task.priority, PRIORITY_RANGE, "priority")
        attempts = _in_range(task.max_attempts, MAX_ATTEMPTS_RANGE, "maxAttempts")
        not_before = _not_before_ms(task.not_before)
        key = clean_idempotency_key(idempotency_key)
        campaign = str(task.campaign_id) if task.campaign_id else ""
        given = [str(task.agent_id), campaign, task.kind, payload, priority, attempts, not_before]
        fingerprint = hashlib.sha256(json.dumps(given).encode()).hexdigest()
        digest = hashlib.sha256(key.encode()).hexdigest()
        key_name = keys.task_key(self.tenant_id, digest)
        args: list[str | int] = [str(uuid4()), str(task.agent_id), campaign, task.kind]
        args += [payload, priority, attempts, not_before, fingerprint, KEY_TTL_SECONDS]
        if self.replicas:
            async with unavailable_as_error(self.timeout):
                reply = await call_replicated(
                    self.redis,
                    scripts.ENQUEUE,
                    [key_name],
                    [self.prefix, EVENTS_MAXLEN, *args],
                    replicas=self.replicas,
                    timeout_ms=self.replica_timeout_ms,
                    retry_hint="retry with the same idempotencyKey",
                )
        else:
            reply = await self._run(scripts.ENQUEUE, key_name, *args)
        _refusal(reply)
        return _record(reply[1]), reply[0] == b"CREATED"

    async def claim(self, agent_id: UUID, at_most: int, lease_seconds: int) -> Claimed:
        at_most = _in_range(at_most, (1, CLAIM_MAX), "max")
        lease = _in_range(lease_seconds, LEASE_SECONDS_RANGE, "leaseSeconds")
        tokens = [secrets.token_urlsafe(18) for _ in range(at_most)]
        claimed, next_due = await self._run(
            scripts.CLAIM,
            keys.agent_ready(self.tenant_id, agent_id),
            str(agent_id),
            at_most,
            lease * 1000,
            RETENTION_MS,
            *tokens,
        )
        leases = [Lease(task, task.lease_token) for task in map(_record, claimed)]
        return Claimed(leases, None if int(next_due) < 0 else int(next_due))

    async def heartbeat(
        self, agent_id: UUID, task_id: UUID, token: str, lease_seconds: int
    ) -> TaskRecord:
        lease = _in_range(lease_seconds, LEASE_SECONDS_RANGE, "leaseSeconds")
        reply = await self._run(
            scripts.HEARTBEAT, self._task(task_id), str(task_id), token, lease * 1000, str(agent_id)
        )
        _refusal(reply)
        return _record(reply[1])

    async def complete(self, agent_id: UUID, task_id: UUID, token: str, result: Any) -> TaskRecord:
        text = json_text(result, "result", RESULT_MAX_BYTES)
        reply = await self._run(
            scripts.COMPLETE,
            self._task(task_id),
            str(task_id),
            token,
            text,
            RETENTION_MS,
            str(agent_id),
        )
        _refusal(reply)
        return _record(reply[1])

    async def fail(
        self, agent_id: UUID, task_id: UUID, token: str, error: str, retryable: bool
    ) -> TaskRecord:
        if len(error) > ERROR_MAX_CHARS:
            raise BadUserInput(
                f"'error' must be at most {ERROR_MAX_CHARS} characters", field="error"
            )
        reply = await self._run(
            scripts.FAIL,
            self._task(task_id),
            str(task_id),
            token,
            error,
            1 if retryable else 0,
            BACKOFF_BASE_MS,
            BACKOFF_CAP_MS,
            # "Equal jitter": half the backoff is certain, half random, so retries of tasks
            # that failed together spread out but none comes back at once.
            f"{0.5 + random.random() / 2:.6f}",
            RETENTION_MS,
            str(agent_id),
        )
        _refusal(reply)
        return _record(reply[1])

    async def cancel(self, task_id: UUID) -> TaskRecord:
        reply = await self._run(scripts.CANCEL, self._task(task_id), str(task_id), RETENTION_MS)
        _refusal(reply)
        return _record(reply[1])

    async def retry(self, task_id: UUID) -> TaskRecord:
        reply = await self._run(scripts.RETRY, self._task(task_id), str(task_id))
        _refusal(reply)
        return _record(reply[1])

    async def sweep(self, at_most: int = 500) -> int:
        """Take back expired leases and retire finished tasks; returns leases taken back."""
        taken = await self._run(
            scripts.SWEEP, keys.task_leases(self.tenant_id), RETENTION_MS, at_most
        )
        return int(taken)

    def _task(self, task_id: UUID) -> str:
        return keys.task(self.tenant_id, task_id)


def backoff_ms(attempts: int, jitter: float) -> int:
    """What FAIL waits before attempt ``attempts + 1``, in Python for docs and tests."""
    return math.floor(min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * (1 << (attempts - 1))) * jitter)
