"""Text normalisation for routing: one canonical form for the many ways citizens write.

Rules, applied per word so that every normalised token keeps the word it came from:

* Arabic: diacritics (harakat, superscript alef, Quranic marks) and tatweel removed; alef forms
  (أ إ آ ٱ) -> ا; ta marbuta ة -> ه; alef maqsura ى -> ي; hamza on a seat (ؤ ئ) -> its seat
  (و ي) and a bare hamza ء dropped; Maghrebi/Persian letters (ڭ گ -> ق, ک -> ك, ی -> ي,
  ڤ -> ف, پ -> ب, چ -> ج); Arabic-Indic digits -> 0-9; a letter repeated three times or
  more is squeezed to one (``بزاااف`` -> ``بزاف``).
* Latin: accents removed (``é`` -> ``e``, ``ç`` -> ``c``), ligatures split (``œ`` -> ``oe``),
  lower case, doubled letters squeezed (``Marrakkech``, ``Marrakech`` -> ``marakech``).
* Arabizi: inside a Latin word, a single digit standing for a letter becomes that letter
  (2 -> a, 3 -> a, 5 -> kh, 6 -> t, 7 -> h, 8 -> gh, 9 -> q): ``m9tou3`` -> ``mqtoua``,
  ``7fra`` -> ``hfra``. Numbers and codes (``2024``, ``S12``) are left alone, and a number glued
  to a unit is split from it (``50dh`` -> ``50 dh``, ``20h`` -> ``20 h``, ``4G`` -> ``4 g``).
* Emoji, symbols and punctuation separate words and are dropped; a word mixing Arabic and
  Latin letters is split where the script changes.
"""
from __future__ import annotations

import re
import unicodedata
from itertools import chain
from typing import TypeVar

__all__ = ["normalise", "normalise_word", "tokenize", "split_words", "tokenize_words", "is_arabic", "is_latin",
           "remember"]

_MARKS = re.compile("[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640\u200c-\u200f]")
_WORD = re.compile(r"[^\W_]+")
_SCRIPT_RUN = re.compile(r"[a-z0-9]+|[\u0621-\u064a]+|[^\sa-z0-9\u0621-\u064a]+")
_ARABIC_REPEAT = re.compile(r"([\u0621-\u064a])\1{2,}")
_LATIN_REPEAT = re.compile(r"([a-z])\1+")
_ARABIZI_DIGIT = re.compile(r"(?<![0-9])[2356789](?![0-9])")
_NUMBER_WITH_UNIT = re.compile(r"([0-9]+)([a-z]+)([0-9]*)")
_UNITS = frozenset("h e er eme em g km kg m mn min j dh da x st nd rd th am pm mo go mb gb an ans dzd mad".split())

_TABLE = str.maketrans({
    "ة": "ه", "ى": "ي", "ء": "", "ٱ": "ا", "ڭ": "ق", "گ": "ق", "ک": "ك", "ی": "ي", "ې": "ي",
    "ے": "ي", "ۃ": "ه", "ڤ": "ف", "ڢ": "ف", "پ": "ب", "چ": "ج", "ژ": "ز", "ـ": "",
    "œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss", "ø": "o", "ł": "l", "đ": "d", "ı": "i",
    **{chr(0x0660 + i): str(i) for i in range(10)},
    **{chr(0x06F0 + i): str(i) for i in range(10)},
})
_ARABIZI = {"2": "a", "3": "a", "5": "kh", "6": "t", "7": "h", "8": "gh", "9": "q"}

_CACHE: dict[str, tuple[str, ...]] = {}
_CACHE_UNSQUEEZED: dict[str, tuple[str, ...]] = {}
MEMO_MAX_ENTRIES = 50_000
MEMO_MAX_KEY = 40

_V = TypeVar("_V")


def remember(memo: dict[str, _V], key: str, value: _V, limit: int | None = None) -> _V:
    """Store ``value`` under ``key`` in a per-word memo and return it.

    Texts are untrusted, so a memo's memory is bounded: keys longer than ``MEMO_MAX_KEY`` are not
    kept, and a memo holding ``limit`` entries (``MEMO_MAX_ENTRIES``) starts again empty (citizens
    share a vocabulary, so it soon holds the common words again).
    """
    if len(key) <= MEMO_MAX_KEY:
        if len(memo) >= (limit or MEMO_MAX_ENTRIES):
            memo.clear()
        memo[key] = value
    return value


def is_arabic(token: str) -> bool:
    """True when a normalised token is written in Arabic letters."""
    return bool(token) and "\u0621" <= token[0] <= "\u064a"


def is_latin(token: str) -> bool:
    """True when a normalised token is Latin letters (possibly with digits) and not a bare number."""
    return bool(token) and token.isascii() and not token.isdigit()


def _latin(run: str, squeeze: bool = True) -> list[str]:
    if run.isdigit():
        return [run]
    if not run.isalpha():
        unit = _NUMBER_WITH_UNIT.fullmatch(run)
        if unit and unit.group(2) in _UNITS:
            return [g for g in unit.groups() if g]
        run = _ARABIZI_DIGIT.sub(lambda m: _ARABIZI[m.group()], run)
    return [_LATIN_REPEAT.sub(r"\1", run) if squeeze else run]


def _normalise_word(word: str, squeeze: bool = True) -> tuple[str, ...]:
    text = unicodedata.normalize("NFKD", word)
    text = _MARKS.sub("", text).translate(_TABLE).lower()
    out: list[str] = []
    for run in _SCRIPT_RUN.findall(text):
        first = run[0]
        if first.isascii():
            out.extend(_latin(run, squeeze))
        elif "\u0621" <= first <= "\u064a":
            out.append(_ARABIC_REPEAT.sub(r"\1", run))
        else:
            out.append(run)
    return tuple(out)


def normalise_word(word: str) -> tuple[str, ...]:
    """Normalise one word (no spaces); may yield several tokens when scripts are mixed."""
    cached = _CACHE.get(word)
    if cached is None:
        # Squeezing only ever changes Latin letters, so the unsqueezed form (usually wanted too,
        # for places) is squeezed rather than normalised again.
        cached = remember(_CACHE, word, tuple(_LATIN_REPEAT.sub(r"\1", t) for t in _unsqueezed_word(word)))
    return cached


def split_words(text: str) -> list[str]:
    """The words of ``text`` that :func:`tokenize` normalises, in order."""
    return _WORD.findall(_MARKS.sub("", text))


def tokenize(text: str, squeeze: bool = True) -> tuple[list[str], list[str]]:
    """Split ``text`` into normalised tokens and, in parallel, the word each token came from.

    ``squeeze=False`` keeps doubled Latin letters (place names: "fees" must not become "Fes").
    """
    return tokenize_words(split_words(text), squeeze)


def tokenize_words(words: list[str], squeeze: bool = True) -> tuple[list[str], list[str]]:
    """:func:`tokenize` for a text already split by :func:`split_words` (to split it only once)."""
    memo, normal = (_CACHE, normalise_word) if squeeze else (_CACHE_UNSQUEEZED, _unsqueezed_word)
    try:
        parts = list(map(memo.__getitem__, words))
    except KeyError:
        parts = list(map(normal, words))
    tokens = list(chain.from_iterable(parts))
    if len(tokens) == len(words) and () not in parts:
        return tokens, list(words)
    return tokens, [word for word, part in zip(words, parts) for _ in part]


def _unsqueezed_word(word: str) -> tuple[str, ...]:
    cached = _CACHE_UNSQUEEZED.get(word)
    return remember(_CACHE_UNSQUEEZED, word, _normalise_word(word, squeeze=False)) if cached is None else cached


def normalise(text: str) -> str:
    """The normalised form of ``text``: canonical tokens separated by single spaces."""
    return " ".join(tokenize(text)[0])
