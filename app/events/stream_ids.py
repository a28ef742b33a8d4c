"""Redis Stream ids ("<milliseconds>-<sequence>"), which clients hold as resume cursors."""

from __future__ import annotations

import re

from app.errors import BadUserInput

STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")


def parse(stream_id: str, given_as: str = "after") -> tuple[int, int]:
    """``given_as`` names where a client's cursor came from (the ``after`` argument or the
    ``Last-Event-ID`` header), so that a refusal names what the client sent."""
    match = STREAM_ID.fullmatch(stream_id)
    if match is None:
        raise BadUserInput(f"'{given_as}' must be an event id received earlier", argument=given_as)
    return int(match.group(1)), int(match.group(2))


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
