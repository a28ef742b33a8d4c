"""Global ids round-trip, carry their type, and reject anything else as BAD_USER_INPUT."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import BadUserInput
from app.ids import decode_any, decode_id, encode_id


@given(st.uuids(), st.sampled_from(["Agent", "Campaign", "Tenant"]))
def test_ids_round_trip(pk: uuid.UUID, type_name: str) -> None:
    assert decode_any(encode_id(type_name, pk)) == (type_name, pk)
    assert decode_id(encode_id(type_name, pk), type_name) == pk


def test_an_id_of_another_type_is_rejected() -> None:
    with pytest.raises(BadUserInput, match="not a Campaign id"):
        decode_id(encode_id("Agent", uuid.uuid4()), "Campaign")


@given(st.text(max_size=300))
def test_arbitrary_text_is_rejected_or_decodes_to_a_real_uuid(text: str) -> None:
    try:
        _, pk = decode_any(text)
    except BadUserInput:
        return
    assert isinstance(pk, uuid.UUID)
