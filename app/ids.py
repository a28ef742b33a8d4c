"""Opaque global ids (``base64url("Type:uuid")``) and the rules for decoding them.

Decoding checks the type, so an id of one type can never fetch an object of another.
"""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

from app.errors import BadUserInput

MAX_ID_LENGTH = 200


def encode_id(type_name: str, pk: UUID) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode_any(global_id: str) -> tuple[str, UUID]:
    """Split a global id into (type name, primary key), or raise BAD_USER_INPUT."""
    if not isinstance(global_id, str) or not global_id or len(global_id) > MAX_ID_LENGTH:
        raise BadUserInput("Invalid id", argument="id")
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
        type_name, _, pk = raw.partition(":")
        return type_name, UUID(pk)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise BadUserInput(f"Invalid id {global_id!r}", argument="id") from exc


def decode_id(global_id: str, expected_type: str) -> UUID:
    """The primary key of an id that must be of ``expected_type``."""
    type_name, pk = decode_any(global_id)
    if type_name != expected_type:
        article = "an" if expected_type[:1] in "AEIOU" else "a"
        raise BadUserInput(f"Id {global_id!r} is not {article} {expected_type} id", argument="id")
    return pk
