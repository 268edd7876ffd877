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

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from conversations.complaints import OPEN_STATUSES, add_event
from store.models import Complaint

_ARABIC = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ة": "ه", "ى": "ي", "ؤ": "و", "ئ": "ي",
                         "ـ": None, "٠": "0", "١": "1", "٢": "2", "٣": "3", "٤": "4", "٥": "5", "٦": "6",
                         "٧": "7", "٨": "8", "٩": "9"})
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
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
    return (frozenset(w for w in words if len(w) > 1),
            frozenset(padded[i:i + 3] for i in range(max(len(padded) - 2, 0))))


@functools.lru_cache(maxsize=4096)  # about 8 kB each: the trigram set dominates
def _features_of(complaint_id: int, text: str) -> Features:
    """A stored complaint's features, computed once per process (the text is part of the key, so
    an edited or erased text is never compared by its old features)."""
    return _features(normalise(text))


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


def find_probable_duplicate(session: Session, complaint: Complaint, now: datetime,
                            settings: DuplicateSettings) -> tuple[Complaint, float] | None:
    """The most similar open complaint of the same category and place within the window, if similar enough."""
    if not complaint.category or not complaint.place or not complaint.text.strip():
        return None
    c = _complaints.c
    candidates = session.execute(
        sa_select(c.id, c.text).where(c.category == complaint.category, c.place == complaint.place,
                                      c.status.in_(OPEN_STATUSES), c.received_at >= now - settings.window,
                                      c.id != complaint.id, c.duplicate_of_id.is_(None))
        .order_by(c.received_at.desc()).limit(settings.max_candidates)
    ).all()
    mine = _features(normalise(complaint.text))
    best: tuple[int, float] | None = None
    for candidate_id, text in candidates:
        score = _score(mine, _features_of(candidate_id, text or ""))
        if score >= settings.threshold and (best is None or score > best[1]):
            best = (candidate_id, score)
    if best is None:
        return None
    original = session.get(Complaint, best[0])
    return (original, best[1]) if original is not None else None


def flag_probable_duplicate(session: Session, config: Any, complaint: Complaint, now: datetime) -> Complaint | None:
    """Set ``probable_duplicate_of_id`` (and a ``probable_duplicate`` event) when one is found."""
    settings = DuplicateSettings.from_config(config)
    if not settings.enabled:
        return None
    found = find_probable_duplicate(session, complaint, now, settings)
    if found is None:
        return None
    original, score = found
    complaint.probable_duplicate_of_id = original.id
    session.add(complaint)
    add_event(session, complaint, "system", "probable_duplicate", at=now,
              data={"of": original.reference, "of_id": original.id, "score": round(score, 3)})
    return original


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
