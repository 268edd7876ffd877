"""What probable-duplicate detection compares in a complaint's text, and the form it is stored in.

A text's features are its normalised words (stopwords left out) and the character trigrams of
those words; two texts are as similar as the larger of the two sets' Jaccard indices
(:func:`similarity`, the plain definition).

Each complaint stores its features (``complaints.text_features``, written with the complaint and
again whenever the ORM changes its text), so a new complaint is compared with the 200 newest of
its category and place without computing theirs: about 10 microseconds a candidate instead of
about 150, however many complaints the database holds. The stored form is a little-endian
array of 32-bit words: the format version, the CRC-32 of the text it was computed from, the
number of words, the number of trigrams, then the CRC-32 of each word and of each trigram.
Stored features are used only while their version and checksum match the text beside them, so a
text changed by any other path, or a row written before the column existed, is scored from its
text, never by features of another text. Two different words (or trigrams) of the compared texts
sharing a 32-bit hash would count as one: with about 200 of each a pair of texts, a score moves
by one element in some 10^5 comparisons.
"""
from __future__ import annotations

import re
import struct
import sys
import unicodedata
import zlib
from array import array
from functools import lru_cache
from typing import Any, NamedTuple

_ARABIC = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ة": "ه", "ى": "ي", "ؤ": "و", "ئ": "ي",
                         "ـ": None, "٠": "0", "١": "1", "٢": "2", "٣": "3", "٤": "4", "٥": "5", "٦": "6",
                         "٧": "7", "٨": "8", "٩": "9"})
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
# One pass for both steps of normalise: combining marks dropped, Arabic variants unified (no
# combining mark is a key or a value of _ARABIC, so the order of the two steps does not matter).
# The marks are looked up in planes 0 and 1, where Unicode has put every one so far; a text with
# a character beyond them takes the character-by-character way, so the result never depends on it.
_SCANNED = 0x20000
_STRIP_AND_UNIFY: dict[int, Any] = {i: None for i in range(_SCANNED) if unicodedata.combining(chr(i))}
_STRIP_AND_UNIFY.update(_ARABIC)
_BEYOND_SCANNED = re.compile("[\U00020000-\U0010ffff]")
STOPWORDS = frozenset(
    "a an and the of in on at to for is are was it this that there my our we i de du des la le les un une et "
    "au aux en dans pour par sur est sont il elle nous je mon ma mes notre nos ce cette qui que pas ne plus "
    "depuis avec في من على الى إلى عن و ان أن هذا هذه لا ما مع عند منذ".split())


def normalise(text: str) -> str:
    """Lower case, no accents or Arabic diacritics, unified Arabic letter variants, words only."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    if decomposed.isascii():  # no combining mark, nothing in _ARABIC
        stripped = decomposed
    elif _BEYOND_SCANNED.search(decomposed) is None:
        stripped = decomposed.translate(_STRIP_AND_UNIFY)
    else:
        stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_ARABIC)
    return " ".join(_NON_WORD.sub(" ", stripped).replace("_", " ").split())


Features = tuple[frozenset[str], frozenset[str]]


def features(text: str) -> Features:
    """The text's words (longer than one letter) and character trigrams, after :func:`normalise`."""
    words = [w for w in normalise(text).split() if w not in STOPWORDS]
    padded = f" {' '.join(words)} "
    return (frozenset(w for w in words if len(w) > 1),
            frozenset([padded[i:i + 3] for i in range(max(len(padded) - 2, 0))]))


def jaccard(a: frozenset[Any], b: frozenset[Any]) -> float:
    if not a or not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def similarity(a: str, b: str) -> float:
    """0..1: the larger of the word-set and the character-trigram Jaccard indices."""
    fa, fb = features(a), features(b)
    return max(jaccard(fa[0], fb[0]), jaccard(fa[1], fb[1]))


# Bump when features() changes: stored features of another version are then ignored.
VERSION = 1
_HEADER = struct.Struct("<4I")
_BIG_ENDIAN = sys.byteorder == "big"
if array("I").itemsize != 4:  # the stored form is 32-bit words
    raise RuntimeError("conversations.text_features needs a platform whose C unsigned int has 4 bytes")


def _checksum(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def _hashed(strings: frozenset[str]) -> list[int]:
    return [zlib.crc32(s.encode("utf-8", "surrogatepass")) for s in strings]


class Hashed(NamedTuple):
    """A text's features as 32-bit hashes: what the comparisons use."""

    words: array[int]
    grams: array[int]


def encode(text: str) -> bytes:
    """The stored form of ``text``'s features (see the module's docstring)."""
    words, grams = features(text)
    # A set: two strings sharing a hash count once, as they will when compared.
    hashed_words, hashed_grams = set(_hashed(words)), set(_hashed(grams))
    stored = array("I", [VERSION, _checksum(text), len(hashed_words), len(hashed_grams)])
    stored.extend(hashed_words)
    stored.extend(hashed_grams)
    if _BIG_ENDIAN:
        stored.byteswap()
    return stored.tobytes()


@lru_cache(maxsize=256)
def encoded(text: str) -> bytes:
    """:func:`encode`, remembered for the latest texts: ``Core.prepare`` encodes a message's text
    before its transaction, and the complaint written in that transaction finds it here."""
    return encode(text)


def sizes(stored: bytes | None, text: str) -> tuple[int, int] | None:
    """How many words and trigrams ``stored`` holds, if it holds ``text``'s features (else None)."""
    if not stored or len(stored) < _HEADER.size:
        return None
    version, checksum, n_words, n_grams = _HEADER.unpack_from(stored)
    if version != VERSION or checksum != _checksum(text) or len(stored) != _HEADER.size + 4 * (n_words + n_grams):
        return None
    return n_words, n_grams


def decode(stored: bytes, n_words: int) -> Hashed:
    """The hashes of ``stored``, whose :func:`sizes` were checked."""
    values = array("I")
    values.frombytes(stored)
    if _BIG_ENDIAN:
        values.byteswap()
    return Hashed(values[4:4 + n_words], values[4 + n_words:])


@lru_cache(maxsize=2048)
def hashed(text: str) -> Hashed:
    """``text``'s features as hashes, computed (for texts with no valid stored features: a few
    after an upgrade or a change of text by SQL; the cache keeps them from costing each time)."""
    stored = encode(text)
    n_words = _HEADER.unpack_from(stored)[2]
    return decode(stored, n_words)


def of(stored: bytes | None, text: str) -> Hashed:
    """``text``'s hashed features: from ``stored`` when it holds them, else computed."""
    found = sizes(stored, text)
    return decode(stored, found[0]) if found is not None and stored is not None else hashed(text)
