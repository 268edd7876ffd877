"""Legal clocks: acknowledgement and answer due dates (calendar or working days).

The defaults come from ``[deadlines]``; ``[deadlines.per_kind.<kind>]`` and
``[deadlines.per_administration.<id>]`` override them (a branch ``water_utility.oran`` first takes
the national ``water_utility`` override, then its own). An override may set ``acknowledge_days``,
``answer_days`` and ``working_days``. Working days skip the weekend (``weekend``, Saturday and
Sunday by default; ``["fri", "sat"]`` in Algeria) and the ``holidays`` (ISO dates, or ranges
``"2026-03-20..2026-03-22"``). Days are counted on the UTC calendar; the time of day is kept.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache

from config.loader import Deadlines

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _overrides(deadlines: Deadlines, kind: str | None, administration: str | None) -> list[dict]:
    national = (administration or "").partition(".")[0]
    found = [deadlines.per_kind.get(kind or ""), deadlines.per_administration.get(national)]
    if administration and administration != national:
        found.append(deadlines.per_administration.get(administration))
    return [dict(o) for o in found if o]


def rules_for(deadlines: Deadlines, kind: str | None, administration: str | None) -> tuple[int, int, bool]:
    """(acknowledge days, answer days, working days?) after the per-kind and per-administration overrides."""
    ack, answer, working = deadlines.acknowledge_days, deadlines.answer_days, deadlines.working_days
    for override in _overrides(deadlines, kind, administration):
        ack = int(override.get("acknowledge_days", ack))
        answer = int(override.get("answer_days", answer))
        working = bool(override.get("working_days", working))
    return ack, answer, working


def _days_for(deadlines: Deadlines, kind: str | None, administration: str | None) -> tuple[int, int]:
    ack, answer, _ = rules_for(deadlines, kind, administration)
    return ack, answer


@lru_cache(maxsize=64)
def parse_holidays(holidays: tuple[str, ...]) -> frozenset[date]:
    """ISO dates and ``start..end`` ranges (inclusive) as a set of dates; ValueError names a bad entry."""
    days: set[date] = set()
    for entry in holidays:
        text = str(entry).strip()
        try:
            if ".." in text:
                first, _, last = text.partition("..")
                start, end = date.fromisoformat(first.strip()), date.fromisoformat(last.strip())
                if end < start:
                    raise ValueError("the range ends before it starts")
                days.update(start + timedelta(days=i) for i in range((end - start).days + 1))
            else:
                days.add(date.fromisoformat(text))
        except ValueError as exc:
            raise ValueError(f"deadlines.holidays: {text!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD ({exc})") from exc
    return frozenset(days)


def weekend_days(deadlines: Deadlines) -> frozenset[int]:
    """The weekend as ``date.weekday()`` numbers (Monday is 0)."""
    names: Iterable[object] = getattr(deadlines, "weekend", ("sat", "sun"))
    out = set()
    for name in names:
        if isinstance(name, int):
            out.add(name)
        else:
            out.add(WEEKDAYS.index(str(name).strip().lower()[:3]))
    return frozenset(out)


def is_working_day(day: date, deadlines: Deadlines) -> bool:
    return day.weekday() not in weekend_days(deadlines) and day not in parse_holidays(tuple(deadlines.holidays))


def add_days(start: datetime, days: int, deadlines: Deadlines, working_days: bool | None = None) -> datetime:
    """``start`` + ``days`` calendar days, or working days (not weekend, not a holiday) if configured.

    With working days, the result is the ``days``-th working day after ``start``'s date, at
    ``start``'s time of day: a complaint received on a Saturday with 1 working day is due on Monday.
    """
    working = deadlines.working_days if working_days is None else working_days
    if not working:
        return start + timedelta(days=days)
    weekend = weekend_days(deadlines)
    if len(weekend) >= 7:
        raise ValueError("deadlines.weekend covers the whole week; no day is a working day")
    holidays = parse_holidays(tuple(deadlines.holidays))
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() not in weekend and current.date() not in holidays:
            remaining -= 1
    return current


def due_dates(received_at: datetime, deadlines: Deadlines, kind: str | None = None,
              administration: str | None = None) -> tuple[datetime, datetime]:
    """(acknowledgement due, answer due) for a complaint received at ``received_at``."""
    ack_days, answer_days, working = rules_for(deadlines, kind, administration)
    return (add_days(received_at, ack_days, deadlines, working),
            add_days(received_at, answer_days, deadlines, working))
