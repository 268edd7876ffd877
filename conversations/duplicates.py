"""Probable duplicates: a new complaint very like an open one in the same category and place.

The database narrows the candidates (same category and place, open, received within the
window, newest first, limited); Python compares the texts: the larger of the Jaccard index of
the normalised word sets and that of the character trigrams (robust to spelling variants and
Arabic/Latin word endings), from the features stored with each complaint
(:mod:`conversations.text_features`). A score at or above the threshold flags
``probable_duplicate_of_id`` with an event for the officer, who may then link it
(:func:`link_duplicate`).

``[duplicates]`` in the configuration: ``enabled`` (true), ``threshold`` (0.5), ``window_days``
(30), ``max_candidates`` (200).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, literal
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from conversations import text_features
from conversations.complaints import OPEN_STATUSES, add_event
from conversations.text_features import Hashed
from store import fast
from store.models import Complaint


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


_complaints = Complaint.__table__  # type: ignore[attr-defined]


class ProbableDuplicate(NamedTuple):
    """The open complaint a new one most resembles: what the flag and its event need."""

    id: int
    reference: str
    score: float


_CANDIDATES: dict[int, Any] = {}


def _candidates(max_candidates: int) -> Any:
    """The candidate query, built once per limit (its values are bound on each call)."""
    stmt = _CANDIDATES.get(max_candidates)
    if stmt is None:
        c = _complaints.c
        # The statuses as plain bound values: the same "IN (?, ?, ?)", without an expanding IN
        # to render again on every execution.
        open_statuses = c.status.in_([literal(status, c.status.type) for status in OPEN_STATUSES])
        stmt = _CANDIDATES[max_candidates] = (
            sa_select(c.id, c.reference, c.text, c.text_features)
            .where(c.category == bindparam("category"), c.place == bindparam("place"), open_statuses,
                   c.received_at >= bindparam("since"), c.duplicate_of_id.is_(None))
            .order_by(c.received_at.desc()).limit(max_candidates))
    return stmt


def probable_duplicate(session: Session, config: Any, *, category: str | None, place: str | None, text: str,
                       features: bytes | None, now: datetime) -> ProbableDuplicate | None:
    """The most similar open complaint of this category and place within the window, if similar
    enough (the newest of equally similar ones), for a complaint about to be created with ``text``
    (``features``: its encoded features); None when duplicate detection is off."""
    settings = DuplicateSettings.from_config(config)
    if not settings.enabled or not category or not place or not text.strip():
        return None
    candidates = fast.query(session, _candidates(settings.max_candidates), {
        "category": category, "place": place, "since": now - settings.window})
    return _best_match(text_features.of(features, text), candidates, settings.threshold)


def probable_duplicate_event(found: ProbableDuplicate) -> dict[str, Any]:
    """The ``data`` of the ``probable_duplicate`` event that tells the officer about ``found``."""
    return {"of": found.reference, "of_id": found.id, "score": round(found.score, 3)}


def _best_match(mine: Hashed, candidates: Any, threshold: float) -> ProbableDuplicate | None:
    """The first of the most similar ``(id, reference, text, text_features)`` candidates scoring at
    least ``threshold``: the score is :func:`~conversations.text_features.similarity`'s, from the
    stored features where they hold the candidate's text."""
    words, grams = frozenset(mine.words), frozenset(mine.grams)
    n_words, n_grams = len(words), len(grams)
    best: ProbableDuplicate | None = None
    for candidate_id, reference, candidate_text, stored in candidates:
        text = candidate_text or ""
        theirs: Hashed | None = None
        found = text_features.sizes(stored, text)
        if found is None:
            theirs = text_features.hashed(text)
            n_their_words, n_their_grams = len(theirs.words), len(theirs.grams)
        else:
            n_their_words, n_their_grams = found
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
        if theirs is None:
            theirs = text_features.decode(stored, n_their_words)
        if bound_words:
            common = len(words.intersection(theirs.words))
            score = common / (n_words + n_their_words - common)
        else:
            score = 0.0
        if bound_grams > score:  # else the trigram index cannot be the larger one
            common = len(grams.intersection(theirs.grams))
            score = max(score, common / (n_grams + n_their_grams - common))
        if score >= threshold and (best is None or score > best.score):
            best = ProbableDuplicate(candidate_id, reference, score)
    return best


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
