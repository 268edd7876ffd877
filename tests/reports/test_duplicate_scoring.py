"""The fast paths of probable-duplicate detection give what the plain definitions give: normalise
(one translate table), the stored features (used only while they hold the text beside them) and
the best match (size bounds skip candidates that cannot win)."""
from __future__ import annotations

import random
import re
import unicodedata
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations import text_features
from conversations.duplicates import ProbableDuplicate, _best_match
from conversations.text_features import (_ARABIC, _SCANNED, _STRIP_AND_UNIFY, encode, features, hashed, normalise,
                                         similarity, sizes)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORDS = ["eau", "robinet", "quartier", "hamri", "oran", "trois", "jours", "pas", "d'eau", "depuis", "الماء",
         "مقطوع", "حي", "النصر", "أيام", "إنارة", "مدرسة", "١٢", "café", "CAFÉ", "naïve", "ǅ", "ﬁn", "a", "le", "fuite",
         "eaux", "robinets", "quartiers", "école", "ecole", "rue", "inondée", "coupure", "électricité", "x", "y"]
TEXTS = st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join),
    st.text(max_size=60),
    st.text(alphabet=st.characters(min_codepoint=0x300, max_codepoint=0x36F) | st.sampled_from("aeoاأإة \u0654"),
            max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0x1E900, max_codepoint=0x2A700), max_size=20),
)


def reference_normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_ARABIC)
    return " ".join(re.sub(r"[^\w]+", " ", stripped).replace("_", " ").split())


def test_the_translate_table_holds_every_combining_mark() -> None:
    marks = {i for i in range(0x110000) if unicodedata.combining(chr(i))}
    assert {i for i in _STRIP_AND_UNIFY if _STRIP_AND_UNIFY[i] is None} - set(_ARABIC) == marks - set(_ARABIC)
    assert max(marks) < _SCANNED  # else the slow way is taken for those texts: still right, but slower
    assert not marks & set(_ARABIC) and not {ord(v) for v in _ARABIC.values() if v} & marks


@PROPERTY
@given(TEXTS)
def test_normalise_is_the_plain_definition(text: str) -> None:
    assert normalise(text) == reference_normalise(text)


def test_normalise_beyond_the_scanned_planes() -> None:
    for text in ("\U00020000e\u0301", "Caf\u00e9 \U0002a6d6 أ", "\U000e0100a\u0300"):
        assert normalise(text) == reference_normalise(text)


def crc(strings: frozenset[str]) -> frozenset[int]:
    return frozenset(zlib.crc32(x.encode()) for x in strings)


def test_stored_features_are_the_text_features_hashed() -> None:
    for text in ("Pas d'eau au robinet", "Fuite devant l'école", "", "الماء مقطوع في حي النصر"):
        words, grams = features(text)
        stored = encode(text)
        assert sizes(stored, text) == (len(words), len(grams))
        found = text_features.of(stored, text)
        assert (frozenset(found.words), frozenset(found.grams)) == (crc(words), crc(grams))
        assert len(found.words) == len(words) and len(found.grams) == len(grams)  # no repeats
        assert hashed(text) == found


def test_stored_features_of_another_text_are_not_used() -> None:
    stored = encode("Pas d'eau au robinet")
    for text in ("Pas d'eau au robinet!", "Fuite devant l'école", ""):
        assert sizes(stored, text) is None
        assert text_features.of(stored, text) == hashed(text)
    header, rest = stored[:16], stored[16:]
    other_version = (text_features.VERSION + 1).to_bytes(4, "little") + header[4:]
    for broken in (None, b"", header, stored[:-4], other_version + rest, stored + b"\0\0\0\0"):
        assert sizes(broken, "Pas d'eau au robinet") is None, broken


def reference_best(mine: str, candidates: list[tuple[int, str, str]], threshold: float) -> ProbableDuplicate | None:
    best: ProbableDuplicate | None = None
    for cid, reference, text in candidates:
        score = similarity(mine, text)
        if score >= threshold and (best is None or score > best.score):
            best = ProbableDuplicate(cid, reference, score)
    return best


def stored_with(candidates: list[tuple[int, str, str]]) -> list[tuple[int, str, str, bytes | None]]:
    """The candidates as the database gives them: features stored with most, missing (written before
    the column) or of an earlier text (changed by SQL) with some."""
    kinds = (lambda text: encode(text), lambda text: None, lambda text: encode(text + " avant"))
    return [(cid, reference, text, kinds[(0, 0, 0, 1, 2)[i % 5]](text))
            for i, (cid, reference, text) in enumerate(candidates)]


@st.composite
def storms(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A text and candidates: variants of it (a few words dropped, added or changed, so their sizes
    and scores are close) and unrelated texts."""
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12))
    texts = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            texts.append(draw(TEXTS))
            continue
        variant = list(words)
        for position, word in draw(st.lists(st.tuples(st.integers(0, 12), st.sampled_from(WORDS)), max_size=3)):
            i = position % (len(variant) + 1)
            if draw(st.booleans()):
                variant.insert(i, word)
            elif variant:
                variant[min(i, len(variant) - 1)] = word
        texts.append(" ".join(variant))
    return " ".join(words), texts


@PROPERTY
@given(storm=st.one_of(storms(), st.tuples(TEXTS, st.lists(TEXTS, max_size=12))),
       threshold=st.sampled_from([0.0, 0.2, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0, 1.5]))
def test_best_match_is_the_plain_definition(storm: tuple[str, list[str]], threshold: float) -> None:
    mine, texts = storm
    candidates = [(-10 - i, f"ref{i}", text) for i, text in enumerate(texts)]
    found = _best_match(hashed(mine), stored_with(candidates), threshold)
    expected = reference_best(mine, candidates, threshold)
    assert found == expected
    if found is not None:
        assert found.score.hex() == expected.score.hex()  # type: ignore[union-attr]


def test_best_match_over_many_seeded_storms() -> None:
    """Close scores in bulk (variants of one text): a bound that skipped a candidate able to win shows."""
    rnd = random.Random(20240611)
    for _ in range(3000):
        words = rnd.choices(WORDS, k=rnd.randint(1, 14))
        texts = []
        for _ in range(rnd.randint(1, 10)):
            variant = list(words)
            for _ in range(rnd.randint(0, 3)):
                i = rnd.randrange(len(variant) + 1)
                if rnd.random() < 0.4 or not variant:
                    variant.insert(i, rnd.choice(WORDS))
                elif rnd.random() < 0.5:
                    del variant[min(i, len(variant) - 1)]
                else:
                    variant[min(i, len(variant) - 1)] = rnd.choice(WORDS)
            texts.append(" ".join(variant))
        mine = " ".join(words)
        candidates = [(-100 - i, f"ref{i}", text) for i, text in enumerate(texts)]
        for threshold in (0.0, 0.5, 0.8):
            found = _best_match(hashed(mine), stored_with(candidates), threshold)
            expected = reference_best(mine, candidates, threshold)
            assert found == expected, (mine, texts, threshold)
            assert found is None or found.score.hex() == expected.score.hex()  # type: ignore[union-attr]
