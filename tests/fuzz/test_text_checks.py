"""The two text checks run on every message (is it unreadable? is it a 1-5 rating?) give exactly
what their plain character-by-character definitions give, for every character and any text."""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.dialogue import _ALNUM, _JUNK, _is_unreadable
from conversations.satisfaction import _DIGITS, _KEPT, VALUES, rating_from_text

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVERY_CHARACTER = "".join(map(chr, range(0x110000)))
SPECIAL = ("\ufffd\x00\x01\x07\x1b\x7f\x80\x9f\ue000\uf8ff\U000f0000\U0010fffd\ud800\udfff\u200e\u00ad"
           " \t\n\r\x0b\x0c\x1c\x85\xa0\u2000\u2028\u3000\ufeff.!/-_"
           "0123456789١٢٣٤٥٦٧٨٩٠۱۲۳۴۵۶۷۸۹۰፩²①５𝟑\u0301\u0654ﬁaéأ")
TEXTS = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40),
    st.text(alphabet=st.sampled_from(SPECIAL), max_size=12),
    st.text(alphabet=st.sampled_from(SPECIAL) | st.characters(), max_size=40),
)


def plain_unreadable(text: str) -> bool:
    if not text:
        return False
    meaningful = sum(1 for ch in text if ch.isalnum())
    junk = sum(1 for ch in text if ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Co", "Cs")
               and ch not in "\n\r\t")
    return meaningful == 0 or junk > len(text) / 3


def plain_rating(text: str, first_line_only: bool = False) -> int | None:
    if first_line_only:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[0] if lines else ""
    cleaned = "".join(ch for ch in unicodedata.normalize("NFKC", text).translate(_DIGITS)
                      if not ch.isspace() and ch not in ".!/-")
    if len(cleaned) == 1 and cleaned.isdigit() and int(cleaned) in VALUES:
        return int(cleaned)
    return None


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "value", fn(*args)
    except Exception as exc:  # noqa: BLE001  (the same exception is part of the behaviour)
        return "raised", type(exc)


def test_character_classes_match_the_plain_predicates_for_every_character() -> None:
    assert _ALNUM.findall(EVERY_CHARACTER) == [ch for ch in EVERY_CHARACTER if ch.isalnum()]
    assert _JUNK.findall(EVERY_CHARACTER) == [
        ch for ch in EVERY_CHARACTER
        if ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Co", "Cs") and ch not in "\n\r\t"]
    assert _KEPT.findall(EVERY_CHARACTER) == [ch for ch in EVERY_CHARACTER if not ch.isspace() and ch not in ".!/-"]
    assert not (set(_DIGITS) | set(_DIGITS.values())) & {ord(ch) for ch in EVERY_CHARACTER if not _KEPT.match(ch)}


@pytest.mark.parametrize("start", range(0, 0x110000, 0x11000))
def test_every_single_character(start: int) -> None:
    for code in range(start, start + 0x11000):
        ch = chr(code)
        assert _is_unreadable(ch) == plain_unreadable(ch), hex(code)
        assert outcome(rating_from_text, ch) == outcome(plain_rating, ch), hex(code)


@PROPERTY
@given(TEXTS)
def test_unreadable_is_the_plain_definition(text: str) -> None:
    assert _is_unreadable(text) == plain_unreadable(text)


@PROPERTY
@given(TEXTS, st.booleans())
def test_rating_is_the_plain_definition(text: str, first_line_only: bool) -> None:
    assert outcome(rating_from_text, text, first_line_only) == outcome(plain_rating, text, first_line_only)


def test_real_messages_and_the_junk_boundary() -> None:
    data = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing_dev.jsonl"
    texts = [json.loads(line)["text"] for line in data.open(encoding="utf-8")] if data.exists() else []
    texts += ["Pas d'eau au robinet depuis trois jours", "الماء مقطوع في حي النصر", "3", " ٤ ", "5.", "4 stars"]
    for text in texts:
        for variant in (text, text[:3], text + "\n> 3", "2\n" + text, "\ufffd" * (len(text) // 2) + text):
            assert _is_unreadable(variant) == plain_unreadable(variant)
            for first_line_only in (False, True):
                assert outcome(rating_from_text, variant, first_line_only) == outcome(plain_rating, variant,
                                                                                      first_line_only)
    for length in range(1, 30):
        for junk in range(length + 1):
            for filler, bad in (("a", "\x01"), ("é", "\ufffd"), ("1", "\ue000"), ("\n", "\udfff")):
                text = filler * (length - junk) + bad * junk
                assert _is_unreadable(text) == plain_unreadable(text), text
