"""GraphQL types of the audit trail: entries, the fields each changed, their filters.

An entry is shown as what changed, not as the stored snapshots: the fields whose values
differ between ``before`` and ``after`` (every field of a creation or a deletion), named as
the API names them, with what is internal to the store left out.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.cost.directives import Cost, CostStore, ListSize, Store
from app.errors import BadUserInput
from app.ids import decode_any, encode_id
from app.pagination import check_first
from app.validation import check_window, has_control_chars
from loaders.postgres.audit import AuditFilter as Where
from loaders.postgres.audit import AuditPageArgs
from resolvers.columns import Row, column, row_of

# Stored columns never shown as changes: the tenant is the caller's, the update time moves
# with every change, and the ledger's fingerprint is a digest for idempotency checks.
HIDDEN = frozenset({"tenant_id", "updated_at", "fingerprint"})
MAX_ACTIONS = 20

# The entity types audit rows carry, and the type of the global id their entity has.
ENTITY_TYPES = {
    "campaign": "Campaign",
    "agent": "Agent",
    "campaign_agent": "Agent",  # a membership change names the agent that joined or left
    "media_asset": "MediaAsset",
    "ledger_transaction": "Transaction",
    "agent_memory": "AgentMemory",
    "tenant": "Tenant",  # audit.prune: the trail's own trimming
    "task": "Task",  # a person's cancelTask or retryTask (app/commands/tasks.py)
    "api_key": "ApiKey",  # chimera apikey create, revokeApiKey (app/api_keys.py)
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def changes_of(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldChange]:
    old, new = before or {}, after or {}
    return [
        FieldChange(field=camel(name), before=old.get(name), after=new.get(name))
        for name in sorted(old.keys() | new.keys())
        if name not in HIDDEN and old.get(name) != new.get(name)
    ]


def entry_id(pk: int) -> str:
    return base64.urlsafe_b64encode(f"AuditEntry:{pk}".encode()).decode().rstrip("=")


def audit_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(f"audit:{row['id']}".encode()).decode().rstrip("=")


def decode_audit_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        prefix, _, number = raw.decode("ascii").partition(":")
        if prefix != "audit" or not number.isdigit() or len(number) > 19:
            raise ValueError(cursor)
        return int(number)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise BadUserInput("Invalid cursor", argument="after") from exc


def audit_page_args(first: int | None, after: str | None) -> AuditPageArgs:
    before_id = decode_audit_cursor(after) if after is not None else None
    return AuditPageArgs(first=check_first(first), before_id=before_id)


def global_entity_id(row: Any) -> str:
    type_name = ENTITY_TYPES.get(row["entity_type"])
    return encode_id(type_name, row["entity_id"]) if type_name else str(row["entity_id"])


@strawberry.type(
    description="A field an audited change set, with its value before and after.",
    # Read out of its entry's row, already loaded: no store work of its own.
    directives=[Cost(weight=0)],
)
class FieldChange:
    field: str
    before: JSON | None
    after: JSON | None


@strawberry.type(
    description="One audited change: who did what to which entity, and when.",
    directives=[Store(name=CostStore.POSTGRES)],
)
class AuditEntry:
    __slots__ = ("row",)
    row: strawberry.Private[Row]
    id: strawberry.ID = column("id", entry_id)
    actor: str = column("actor", description="The subject of the token that made the change.")
    action: str = column("action", description="For example campaign.update, ledger.spend.")
    entity_type: str = column(
        "entity_type",
        description="campaign, agent, campaign_agent (a membership), media_asset, "
        "ledger_transaction, agent_memory, task, api_key, or tenant (the trail's own "
        "pruning).",
    )
    occurred_at: datetime = column("created_at")

    @classmethod
    def from_row(cls, row: Any) -> AuditEntry:
        return cls(row=row_of(row))

    @strawberry.field(description="The global id of the entity (the agent, for a membership).")
    def entity_id(self) -> strawberry.ID:
        return strawberry.ID(global_entity_id(self.row))

    @strawberry.field(
        description="The fields that changed; every field of a creation.",
        directives=[ListSize(assumed_size=50)],
    )
    def changes(self) -> list[FieldChange]:
        return changes_of(self.row["before"], self.row["after"])


@strawberry.input
class AuditLogFilter:
    entity_id: strawberry.ID | None = None
    entity_type: str | None = None
    actor: str | None = None
    actions: list[str] | None = None
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="At or after this moment."
    )
    to: datetime | None = strawberry.field(default=None, description="Before this moment.")


def audit_filter(given: AuditLogFilter | None) -> Where:
    if given is None:
        return Where()
    check_window(given.from_, given.to, "filter")
    if given.entity_type is not None and given.entity_type not in ENTITY_TYPES:
        raise BadUserInput(
            f"'entityType' must be one of {', '.join(sorted(ENTITY_TYPES))}", argument="filter"
        )
    # [] matches no entry, as an empty status list matches no campaign (resolvers/listing.py).
    actions = None if given.actions is None else tuple(sorted(set(given.actions)))
    if actions is not None and (len(actions) > MAX_ACTIONS or any(len(a) > 64 for a in actions)):
        raise BadUserInput(f"At most {MAX_ACTIONS} actions of 64 characters", argument="filter")
    if actions is not None and any(has_control_chars(a, allow_newlines=False) for a in actions):
        raise BadUserInput("'actions' must not contain control characters", argument="filter")
    if given.actor is not None and len(given.actor) > 200:
        raise BadUserInput("'actor' is at most 200 characters", argument="filter")
    if given.actor is not None and has_control_chars(given.actor, allow_newlines=False):
        raise BadUserInput("'actor' must not contain control characters", argument="filter")
    entity_id = decode_any(given.entity_id)[1] if given.entity_id is not None else None
    return Where(
        entity_type=given.entity_type,
        entity_id=entity_id,
        actor=given.actor,
        actions=actions,
        since=given.from_,
        until=given.to,
    )
