"""Who is calling: bearer tokens (JWT, HS256) to a Principal bound to one tenant and one role.

The Principal is the only source of a tenant id anywhere below the HTTP layer: loaders and
commands take it from here, never from arguments a client controls.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import jwt
from pydantic import SecretStr

from app.errors import Unauthenticated
from app.settings import Settings
from app.validation import BIDI_CONTROLS, has_control_chars

ALGORITHM = "HS256"
ISSUER = "chimera"
# A principal's subject is what the audit trail records as its actor: audit_log.actor is
# varchar(200), so a longer subject would fail every audited write it made.
SUBJECT_MAX = 200
# The longest lifetime `chimera token` mints: a leaked token is good until it expires.
TOKEN_TTL_MIN_SECONDS = 60
TOKEN_TTL_MAX_SECONDS = 366 * 24 * 3600


class Role(StrEnum):
    # An agent runtime: bound to one agent, it works that agent's tasks and session and
    # nothing else (app/extensions/agent_scope.py). It ranks below a viewer.
    AGENT = "agent"
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {Role.AGENT: -1, Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Principal:
    tenant_id: UUID
    tenant_slug: str
    role: Role
    subject: str
    agent_id: UUID | None = None  # set for, and only for, the AGENT role
    # Which client this is, for its own rate-limit bucket: a digest of its token, never
    # the token itself (the bucket's key is visible to anyone who can list Redis keys).
    client_id: str = ""
    # A JWT's `jti`, by which it can be revoked (app/revocations.py); None for API keys.
    token_id: str | None = None

    @property
    def client(self) -> str:
        return self.client_id or f"subject:{self.subject}"


def auth_secret(settings: Settings) -> str:
    """The signing secret: configured, or in dev mode one kept in the data directory.

    Keeping the dev secret on disk means a token printed by `make run` stays valid across
    restarts; production refuses to start without an explicit secret (see lifespan).
    """
    if settings.auth_secret is not None:
        return settings.auth_secret.get_secret_value()
    if settings.is_production:
        raise RuntimeError("CHIMERA_AUTH_SECRET must be set in production")
    path: Path = settings.resolved_data_dir / "auth_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def mint_token(
    secret: str,
    *,
    tenant_id: UUID,
    tenant_slug: str,
    role: Role,
    subject: str,
    ttl_seconds: int,
    agent_id: UUID | None = None,
) -> str:
    if (role is Role.AGENT) != (agent_id is not None):
        raise ValueError("an agent token, and only an agent token, names its agent")
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "sub": subject,
        "tid": str(tenant_id),
        "tenant": tenant_slug,
        "role": role.value,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid4().hex,
    }
    if agent_id is not None:
        claims["agent"] = str(agent_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


DECODED_KEPT = 4096
_decoded: OrderedDict[tuple[str, str], tuple[Principal, float]] = OrderedDict()


def decode_token(secret: str, token: str) -> Principal:
    """The Principal a token names. A token seen before is not verified again (HMAC and
    claims cost more than the rest of a small request) but its expiry still is, every
    time; only tokens that verified are kept."""
    known = _decoded.get((secret, token))
    if known is not None:
        principal, expires = known
        if time.time() < expires:
            return principal
        del _decoded[(secret, token)]
    principal, expires = _verify(secret, token)
    _decoded[(secret, token)] = (principal, expires)
    if len(_decoded) > DECODED_KEPT:
        _decoded.popitem(last=False)
    return principal


def _verify(secret: str, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "tid", "tenant", "role"]},
        )
        role = Role(str(claims["role"]))
        agent = claims.get("agent")
        if (role is Role.AGENT) != (agent is not None):
            raise jwt.InvalidTokenError("an agent token must name its agent, others must not")
        principal = principal_of(
            token, claims, role, agent_id=UUID(str(agent)) if agent is not None else None
        )
        return principal, float(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("The bearer token has expired") from exc
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise Unauthenticated("The bearer token is invalid") from exc


def subject_problem(subject: str) -> str | None:
    """Why a token's subject cannot be a principal's (what the audit trail records as the
    actor of its changes), or None: too long for the trail's column, or holding control
    characters (PostgreSQL refuses NUL; the others would garble whatever shows the trail)."""
    if len(subject) > SUBJECT_MAX:
        return f"must be at most {SUBJECT_MAX} characters"
    if has_control_chars(subject, allow_newlines=False):
        return "must not contain control characters"
    return None


def minting_subject_problem(subject: str) -> str | None:
    """Why `chimera token` should not mint a token for a subject, or None: what a decoded
    token's subject may not be, nor empty, nor holding bidirectional overrides or isolates
    (the trail would show its actor as other text than it is)."""
    if not subject.strip():
        return "must not be empty"
    problem = subject_problem(subject)
    if problem is not None:
        return problem
    if any(ch in BIDI_CONTROLS for ch in subject):
        return "must not contain bidirectional override or isolate characters"
    return None


def principal_of(
    token: str, claims: dict[str, Any], role: Role, *, agent_id: UUID | None = None
) -> Principal:
    """The Principal of a verified token's claims (ours or an identity provider's). A subject
    the audit trail could not record is refused here, before any write is attempted."""
    subject = str(claims["sub"])
    problem = subject_problem(subject)
    if problem is not None:
        raise Unauthenticated(f"The bearer token's subject (sub) {problem}")
    return Principal(
        tenant_id=UUID(str(claims["tid"])),
        tenant_slug=str(claims["tenant"]),
        role=role,
        subject=subject,
        agent_id=agent_id,
        client_id=client_digest(token),
        token_id=str(claims["jti"]) if claims.get("jti") is not None else None,
    )


def client_digest(credential: str) -> str:
    return "t:" + hashlib.sha256(credential.encode()).hexdigest()[:24]


def holds_token(authorization: str | None, expected: SecretStr | None) -> bool:
    """Whether an Authorization header is ``Bearer <expected>``: the operator tokens of
    /readyz's details and /metrics, compared in constant time. No expected token, no match."""
    if expected is None or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.get_secret_value().encode()
    )


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'")
    return value.strip()
