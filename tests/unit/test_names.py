"""Names display as what they are: no bidirectional overrides, never only invisible text,
while emoji sequences and every script, right-to-left ones included, stay accepted."""

from __future__ import annotations

import pytest

from app.errors import BadUserInput
from app.validation import clean_name

BIDI_CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]

INVISIBLE_NAMES = {
    "zero-width-spaces": "\u200b\u200b",
    "zero-width-joiner": "\u200d",
    "byte-order-mark": "\ufeff",
    "word-joiners-and-spaces": " \u2060 \u200c\u00a0\u2060 ",
    "left-to-right-marks": "\u200e\u200f",
    "soft-hyphen": "\u00ad",
    "hangul-filler": "\u3164",
    "hangul-choseong-filler": "\u115f",
    "halfwidth-hangul-filler": "\uffa0",
    "khmer-inherent-vowel": "\u17b4",
    "variation-selector": "\ufe0f",
    "blank-braille-cell": "\u2800",
    "combining-marks-only": "\u0301\u0301",
}

ACCEPTED_NAMES = {
    "emoji-zwj-sequence": "Team \U0001f469\u200d\U0001f4bb",
    "family-emoji": "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "accented": "Équipe Été Zoë",
    "combining-accent": "Cafe\u0301",
    "cjk": "営業チーム 市场部",
    "arabic": "فريق المبيعات",
    "hebrew": "צוות מכירות",
    "mixed-direction": "Sales فريق 2027",
    # Persian "mi-khaham": the zero-width non-joiner is part of correct spelling.
    "persian-zwnj": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    "rtl-mark-between-words": "abc \u200f123",
    "hangul": "\ud55c\uad6d\uc5b4 \ud300",
    "emoji-with-variation-selector": "Launch \u2764\ufe0f",
    "devanagari-with-marks": "\u0939\u093f\u0928\u094d\u0926\u0940",
}


@pytest.mark.parametrize("control", BIDI_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_bidi_override_or_isolate_anywhere_in_a_name_is_refused_naming_the_field(
    control: str,
) -> None:
    for name in (f"{control}evil", f"invoice{control}fdp.exe", f"ok{control}"):
        with pytest.raises(BadUserInput) as refused:
            clean_name(name, "name")
        assert "'name'" in refused.value.message
        assert "bidirectional" in refused.value.message


@pytest.mark.parametrize("case", list(INVISIBLE_NAMES))
def test_a_name_of_only_whitespace_and_format_characters_is_refused(case: str) -> None:
    with pytest.raises(BadUserInput) as refused:
        clean_name(INVISIBLE_NAMES[case], "name")
    assert "'name'" in refused.value.message


@pytest.mark.parametrize("case", list(ACCEPTED_NAMES))
def test_names_in_any_script_and_emoji_sequences_are_accepted_unchanged(case: str) -> None:
    name = ACCEPTED_NAMES[case]
    assert clean_name(f"  {name} ", "name") == name


def test_a_visible_name_around_a_zero_width_character_is_kept_as_given() -> None:
    assert clean_name("Ada\u200bLovelace", "name") == "Ada\u200bLovelace"
