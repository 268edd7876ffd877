"""Complaint references: Damm check digit, formats, randomness."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from conversations import reference as refs


def test_generated_references_are_valid_and_well_formed() -> None:
    drawn = [refs.generate() for _ in range(2000)]
    # Random: 2,000 draws from some 10^8 collide with a chance of about 2% (creation then draws
    # again), so a few collisions are allowed, a pattern is not.
    seen = set(drawn)
    assert len(seen) >= 1990
    for ref in seen:
        assert len(ref) == refs.LENGTH and ref.isdigit() and ref[0] != "0"
        assert refs.is_valid(ref)
        assert refs.parse(refs.format_reference(ref)) == ref


def test_every_single_digit_error_is_caught() -> None:
    rng = random.Random(7)
    for _ in range(300):
        ref = refs.generate()
        for pos in range(len(ref)):
            for digit in "0123456789":
                if digit != ref[pos]:
                    assert not refs.is_valid(ref[:pos] + digit + ref[pos + 1:])
        rng.random()


def test_every_adjacent_transposition_is_caught() -> None:
    for _ in range(500):
        ref = refs.generate()
        for pos in range(len(ref) - 1):
            if ref[pos] != ref[pos + 1]:
                swapped = ref[:pos] + ref[pos + 1] + ref[pos] + ref[pos + 2:]
                assert not refs.is_valid(swapped)


@pytest.mark.parametrize("typed", ["{a}{b}{c}", "{a}-{b}-{c}", "{a} {b} {c}", " {a}.{b}.{c} ", "{a}{b} {c}"])
def test_accepted_with_or_without_separators(typed: str) -> None:
    ref = refs.generate()
    text = typed.format(a=ref[:4], b=ref[4:8], c=ref[8:])
    assert refs.parse(text) == ref


def test_arabic_indic_digits_are_read() -> None:
    ref = refs.generate()
    arabic = ref.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert refs.parse(arabic) == ref


def test_format_and_rejects() -> None:
    assert refs.format_reference("482133075") == "4821-3307-5"
    assert refs.parse("12345") is None
    assert refs.parse("abcd-efgh-i") is None
    assert refs.looks_like_reference("1234-5678-9")
    ref = refs.generate()
    assert refs.parse(ref[:-1] + str((int(ref[-1]) + 1) % 10)) is None


def test_every_digit_of_the_body_is_drawn_evenly() -> None:
    """The body is uniform: its first digit over 1-9, the others over 0-9 (20,000 draws: each
    count within 15 % of its expectation, some 7 standard deviations)."""
    drawn = [refs.generate() for _ in range(20000)]
    for position in range(refs.BODY_DIGITS):
        counts = Counter(ref[position] for ref in drawn)
        digits = "123456789" if position == 0 else "0123456789"
        assert set(counts) == set(digits), position
        expected = len(drawn) / len(digits)
        assert all(abs(n - expected) < 0.15 * expected for n in counts.values()), (position, counts)


def test_a_taken_reference_is_drawn_again(db_url, make_gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The reference is written with ON CONFLICT DO NOTHING: a draw another complaint has costs
    nothing but the next draw, in the same transaction, on both databases."""
    from datetime import datetime, timezone

    from conversations.complaints import create_complaint
    from store.models import Complaint

    gw = make_gateway(db_url)
    now = datetime.now(timezone.utc)
    draws = iter(["123456784", "123456784", "123456784", "987654325"])
    monkeypatch.setattr(refs, "generate", lambda: next(draws))

    def create(text: str) -> Complaint:
        return create_complaint(s, gw.config, now=now, text=text, channel="phone", actor="agent",
                                contact_id=None, identity_id=None)

    with gw.db.session() as s:
        first = create("first")
        second = create("second")
        assert (first.reference, second.reference) == ("123456784", "987654325")
        assert s.get(Complaint, second.id).text == "second"
    monkeypatch.setattr(refs, "generate", lambda: "123456784")
    with pytest.raises(RuntimeError, match="free complaint reference"), gw.db.session() as s:
        create("third")
