"""The fast paths of probable-duplicate detection give exactly what the plain definitions give:
normalise (one translate table), the cached features (keyed by the text, least recently used
evicted first) and the best match (size bounds skip candidates that cannot win)."""
from __future__ import annotations

import random
import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations import duplicates
from conversations.duplicates import (_ARABIC, _SCANNED, _STRIP_AND_UNIFY, ProbableDuplicate, _best_match, _features,
                                      _features_of, normalise, similarity)

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


def test_cached_features_are_the_text_features() -> None:
    for text in ("Pas d'eau au robinet", "Fuite devant l'école", "", "Pas d'eau au robinet"):
        words, grams = _features(normalise(text))
        cached_words, cached_grams, n_words, n_grams = _features_of(text)
        assert (frozenset(cached_words), frozenset(cached_grams), n_words, n_grams) == \
            (words, grams, len(words), len(grams))
        assert len(cached_words) == n_words and len(cached_grams) == n_grams  # no repeats


def test_the_cache_is_bounded_by_its_elements(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(duplicates, "_cache", {})
    monkeypatch.setattr(duplicates, "_cache_elements", 0)
    monkeypatch.setattr(duplicates, "_refused", 0)
    monkeypatch.setattr(duplicates, "_ADMIT", 4)
    size = sum(len(part) for part in _features(normalise("texte 0")))
    monkeypatch.setattr(duplicates, "_CACHE_BUDGET", 3 * size)
    for letter in "hij":
        _features_of(f"texte {letter}")
    assert list(duplicates._cache) == ["texte h", "texte i", "texte j"]
    _features_of("texte h")  # used again: now the last to go
    # Full: of the new texts only one in _ADMIT gets in, in place of the least recently used.
    for letter in "klmn":
        cached_words, cached_grams, _, _ = _features_of(f"texte {letter}")
        assert (frozenset(cached_words), frozenset(cached_grams)) == _features(normalise(f"texte {letter}"))
    assert list(duplicates._cache) == ["texte j", "texte h", "texte n"]
    assert duplicates._cache_elements == 3 * size
    # A text longer than the whole budget is still scored; admitted, it evicts only what it must.
    long = " ".join(f"mot{i}" for i in range(2000))
    for _ in range(4):
        cached_words, cached_grams, _, _ = _features_of(long)
        assert (frozenset(cached_words), frozenset(cached_grams)) == _features(normalise(long))
    assert list(duplicates._cache) == [long]


def reference_best(mine: str, candidates: list[tuple[int, str, str]], threshold: float) -> ProbableDuplicate | None:
    best: ProbableDuplicate | None = None
    for cid, reference, text in candidates:
        score = similarity(mine, text)
        if score >= threshold and (best is None or score > best.score):
            best = ProbableDuplicate(cid, reference, score)
    return best


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
    found = _best_match(_features_of(mine), candidates, threshold)
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
            found = _best_match(_features_of(mine), candidates, threshold)
            expected = reference_best(mine, candidates, threshold)
            assert found == expected, (mine, texts, threshold)
            assert found is None or found.score.hex() == expected.score.hex()  # type: ignore[union-attr]
