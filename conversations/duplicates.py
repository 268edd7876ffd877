"""Probable duplicates: a new complaint very like an open one in the same category and place.

The database narrows the candidates (same category and place, open, received within the
window, newest first, limited); Python compares the texts: the larger of the Jaccard index of
the normalised word sets and that of the character trigrams (robust to spelling variants and
Arabic/Latin word endings). A score at or above the threshold flags ``probable_duplicate_of_id``
with an event for the officer, who may then link it (:func:`link_duplicate`).

``[duplicates]`` in the configuration: ``enabled`` (true), ``threshold`` (0.5), ``window_days``
(30), ``max_candidates`` (200).
"""
from __future__ import annotations

import re
import sys
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, literal
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from conversations.complaints import OPEN_STATUSES, add_event
from store.models import Complaint

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


@dataclass(frozen=True)
class DuplicateSettings:
    enabled: bool = True
    threshold: float = 0.5
    window: timedelta = timedelta(days=30)
    max_candidates: int = 200

    @classmethod
    def from_config(cls, config: Any) -> "DuplicateSettings":
        table = dict((config.raw or {}).get("duplicates", {}))
        return cls(enabled=bool(table.get("enabled", True)), threshold=float(table.get("threshold", 0.5)),
                   window=timedelta(days=float(table.get("window_days", 30))),
                   max_candidates=int(table.get("max_candidates", 200)))


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


def tokens(text: str) -> frozenset[str]:
    return _features(normalise(text))[0]


def trigrams(text: str) -> frozenset[str]:
    return _features(normalise(text))[1]


Features = tuple[frozenset[str], frozenset[str]]


def _features(normalised: str) -> Features:
    words = [w for w in normalised.split() if w not in STOPWORDS]
    padded = f" {' '.join(words)} "
    # Interned: texts share most of their trigrams, so cached sets point at one copy of each.
    return (frozenset(w for w in words if len(w) > 1),
            frozenset(map(sys.intern, [padded[i:i + 3] for i in range(max(len(padded) - 2, 0))])))


# Features by text, computed once per process: the texts compared are mostly the same few hundred
# recent complaints of a place (and, in a storm, many identical messages), so a text's features
# are looked up, not recomputed (about 0.1 ms each). Keyed by the text itself, an edited or erased
# complaint is never compared by its old features. Least recently used entries go first once the
# cache holds more than _CACHE_BUDGET words and trigrams: about 6,500 SMS-sized texts, 20 MB
# (measured: 13 bytes an element, keys and strings included). They are kept as tuples of interned
# strings; as frozensets they took about five times as much (a set's table is sparse).
_CACHE_BUDGET = 1_500_000
_Entry = tuple[tuple[str, ...], tuple[str, ...], int, int]
_cache: dict[str, _Entry] = {}
_cache_elements = 0
_cache_lock = threading.Lock()
_ADMIT = 8
_refused = 0


def _features_of(text: str) -> _Entry:
    """A text's features and their sizes, from the cache when it has them."""
    global _cache_elements, _refused
    with _cache_lock:
        entry = _cache.pop(text, None)
        if entry is not None:
            _cache[text] = entry  # now the most recently used
            return entry
    words, grams = _features(normalise(text))
    entry = (tuple(map(sys.intern, words)), tuple(grams), len(words), len(grams))
    with _cache_lock:
        if text in _cache:  # another thread computed it meanwhile
            return entry
        if _cache_elements + entry[2] + entry[3] > _CACHE_BUDGET:
            # Full: comparing each new complaint with the 200 newest of its category and place
            # reads the same texts over and over, and once they outnumber the cache, plain LRU
            # would evict every text just before its next use (no hit at all). Admitting only
            # one new text in _ADMIT keeps most of what is cached, so a share of them still hits.
            _refused += 1
            if _refused % _ADMIT:
                return entry
        _cache[text] = entry
        _cache_elements += entry[2] + entry[3]
        while len(_cache) > 1 and _cache_elements > _CACHE_BUDGET:
            evicted = _cache.pop(next(iter(_cache)))
            _cache_elements -= evicted[2] + evicted[3]
    return entry


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def _score(a: Features, b: Features) -> float:
    return max(jaccard(a[0], b[0]), jaccard(a[1], b[1]))


def similarity(a: str, b: str) -> float:
    """0..1: the larger of the word-set and the character-trigram Jaccard indices."""
    return _score(_features(normalise(a)), _features(normalise(b)))


_complaints = Complaint.__table__  # type: ignore[attr-defined]


class ProbableDuplicate(NamedTuple):
    """The open complaint a new one most resembles: what the flag and its event need."""

    id: int
    reference: str
    score: float


_CANDIDATES: dict[tuple[int, bool], Any] = {}


def _candidates(max_candidates: int, other_than_one: bool) -> Any:
    """The candidate query, built once per limit (its values are bound on each call)."""
    stmt = _CANDIDATES.get((max_candidates, other_than_one))
    if stmt is None:
        c = _complaints.c
        # The statuses as plain bound values: the same "IN (?, ?, ?)", without an expanding IN
        # to render again on every execution.
        open_statuses = c.status.in_([literal(status, c.status.type) for status in OPEN_STATUSES])
        where = [c.category == bindparam("category"), c.place == bindparam("place"), open_statuses,
                 c.received_at >= bindparam("since"), c.duplicate_of_id.is_(None)]
        if other_than_one:
            where.append(c.id != bindparam("me"))
        stmt = _CANDIDATES[(max_candidates, other_than_one)] = (
            sa_select(c.id, c.reference, c.text).where(*where)
            .order_by(c.received_at.desc()).limit(max_candidates))
    return stmt


def find_probable_duplicate(session: Session, complaint: Complaint, now: datetime,
                            settings: DuplicateSettings) -> ProbableDuplicate | None:
    """The most similar open complaint of the same category and place within the window, if similar enough
    (the newest of equally similar ones)."""
    if not complaint.category or not complaint.place or not complaint.text.strip():
        return None
    params = {"category": complaint.category, "place": complaint.place, "since": now - settings.window}
    if complaint.id is not None:
        params["me"] = complaint.id
    candidates = session.execute(_candidates(settings.max_candidates, complaint.id is not None), params).all()
    # Cached: the text is one of the next complaints' candidates.
    return _best_match(_features_of(complaint.text), candidates, settings.threshold)


def _best_match(mine: _Entry, candidates: Any, threshold: float) -> ProbableDuplicate | None:
    """The first of the most similar ``(id, reference, text)`` candidates scoring at least ``threshold``:
    the score is :func:`similarity`'s, from the cached features."""
    words, grams, n_words, n_grams = frozenset(mine[0]), frozenset(mine[1]), mine[2], mine[3]
    best: ProbableDuplicate | None = None
    for candidate_id, reference, candidate_text in candidates:
        their_words, their_grams, n_their_words, n_their_grams = _features_of(candidate_text or "")
        # Each Jaccard index is at most the ratio of the set sizes (the same float when the smaller
        # set is inside the larger): candidates that cannot pass the threshold or beat the best so
        # far are not compared, which changes no result.
        if n_words and n_their_words:
            bound_words = n_words / n_their_words if n_words <= n_their_words else n_their_words / n_words
        else:
            bound_words = 0.0
        if n_grams and n_their_grams:
            bound_grams = n_grams / n_their_grams if n_grams <= n_their_grams else n_their_grams / n_grams
        else:
            bound_grams = 0.0
        bound = bound_words if bound_words >= bound_grams else bound_grams
        if bound < threshold or (best is not None and bound <= best.score):
            continue
        if bound_words:
            common = len(words.intersection(their_words))
            score = common / (n_words + n_their_words - common)
        else:
            score = 0.0
        if bound_grams > score:  # else the trigram index cannot be the larger one
            common = len(grams.intersection(their_grams))
            score = max(score, common / (n_grams + n_their_grams - common))
        if score >= threshold and (best is None or score > best.score):
            best = ProbableDuplicate(candidate_id, reference, score)
    return best


_SET_PROBABLE_DUPLICATE = (sa_update(_complaints).where(_complaints.c.id == bindparam("complaint"))
                           .values(probable_duplicate_of_id=bindparam("of")))


def flag_probable_duplicate(session: Session, config: Any, complaint: Complaint,
                            now: datetime) -> ProbableDuplicate | None:
    """Set ``probable_duplicate_of_id`` (and a ``probable_duplicate`` event) when one is found;
    returns the original's id and reference, and the score."""
    settings = DuplicateSettings.from_config(config)
    if not settings.enabled:
        return None
    found = find_probable_duplicate(session, complaint, now, settings)
    if found is None:
        return None
    state = sa_inspect(complaint)
    if state.persistent and state.session is session:
        # One Core UPDATE instead of a unit-of-work flush of the complaint (the candidate query has
        # just flushed the session; the attribute is set as the database now has it).
        session.connection().execute(_SET_PROBABLE_DUPLICATE, {"complaint": complaint.id, "of": found.id})
        set_committed_value(complaint, "probable_duplicate_of_id", found.id)
    else:
        complaint.probable_duplicate_of_id = found.id
        session.add(complaint)
    add_event(session, complaint, "system", "probable_duplicate", at=now,
              data={"of": found.reference, "of_id": found.id, "score": round(found.score, 3)})
    return found


class LinkError(ValueError):
    """A link the rules do not allow (itself, a cycle)."""


def root_of(session: Session, complaint: Complaint) -> Complaint:
    """Follow ``duplicate_of_id`` to the original (chains are short; cycles are refused on link)."""
    seen = {complaint.id}
    current = complaint
    while current.duplicate_of_id is not None:
        parent = session.get(Complaint, current.duplicate_of_id)
        if parent is None or parent.id in seen:
            break
        seen.add(parent.id)
        current = parent
    return current


def link_duplicate(session: Session, complaint: Complaint, original: Complaint, actor: str,
                   now: datetime) -> bool:
    """Mark ``complaint`` as a duplicate of ``original`` (its root, if ``original`` is itself a duplicate).

    Events on both complaints record who linked what. From then on the citizen of ``complaint``
    receives ``original``'s status updates. False when it was already linked there.
    """
    target = root_of(session, original)
    if target.id == complaint.id:
        raise LinkError("a complaint cannot be a duplicate of itself")
    if complaint.duplicate_of_id == target.id:
        return False
    previous = complaint.duplicate_of_id
    complaint.duplicate_of_id = target.id
    complaint.updated_at = now
    session.add(complaint)
    # Complaints that were duplicates of this one now follow the root too.
    for child in session.exec(select(Complaint).where(Complaint.duplicate_of_id == complaint.id)).all():
        child.duplicate_of_id = target.id
        session.add(child)
    add_event(session, complaint, actor, "linked_duplicate", at=now,
              data={"of": target.reference, "of_id": target.id, "previous_id": previous})
    add_event(session, target, actor, "duplicate_linked", at=now,
              data={"duplicate": complaint.reference, "duplicate_id": complaint.id})
    return True


def linked_duplicates(session: Session, original: Complaint) -> list[Complaint]:
    return list(session.exec(select(Complaint).where(Complaint.duplicate_of_id == original.id)
                             .order_by(Complaint.id)).all())  # type: ignore[arg-type]
