"""Redis Stream ids ("<milliseconds>-<sequence>"), which clients hold as resume cursors."""

from __future__ import annotations

import re

from app.errors import BadUserInput

STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")


def parse(stream_id: str) -> tuple[int, int]:
    match = STREAM_ID.fullmatch(stream_id)
    if match is None:
        raise BadUserInput("'after' must be an event id received earlier", argument="after")
    return int(match.group(1)), int(match.group(2))


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
