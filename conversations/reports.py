"""Performance reports, computed by the database (SQL aggregates and window functions).

For the complaints *received* in ``[start, end]`` (dates, UTC, inclusive), grouped by
administration, category, channel or place:

- ``received``: how many;
- ``acknowledged_on_time_pct``: of those whose acknowledgement is decided (acknowledged, or
  its deadline has passed), the share acknowledged by ``ack_due_at``; likewise
  ``answered_on_time_pct`` with ``answered_at`` / ``answer_due_at`` (null without a denominator);
- ``median_hours_to_acknowledge`` / ``p90_…`` and ``median_hours_to_answer`` / ``p90_…``:
  percentiles (linear interpolation, as PostgreSQL's ``percentile_cont``) over the complaints
  that were acknowledged / answered;
- ``overdue``: still open now and past a deadline (answer, or acknowledgement while unacknowledged);
- ``reopened_pct``, ``transferred_pct``: share reopened at least once, transferred at least once;
- ``satisfaction``: mean rating (1-5) of the rated ones, with ``satisfaction_count``.

Percentages have one decimal, hours two. Nothing is loaded row by row into Python: the
database returns one row per group (and per percentile).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Float, Integer, Numeric, and_, case, cast, func, literal, literal_column, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from store.models import Complaint

GROUPS = {"administration": Complaint.administration, "category": Complaint.category,
          "channel": Complaint.channel, "place": Complaint.place}
OPEN = ("new", "assigned", "in_progress")
FIELDS = ("received", "acknowledged_on_time_pct", "answered_on_time_pct", "median_hours_to_acknowledge",
          "median_hours_to_answer", "p90_hours_to_acknowledge", "p90_hours_to_answer", "overdue",
          "reopened_pct", "transferred_pct", "satisfaction", "satisfaction_count")


def _hours(conn: Connection, later: Any, earlier: Any) -> ColumnElement[float]:
    if conn.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def _round(value: Any, digits: int) -> ColumnElement[Any]:
    return func.round(cast(value, Numeric), digits)  # PostgreSQL rounds numerics, not doubles


def _pct(numerator: Any, denominator: Any) -> ColumnElement[Any]:
    return case((denominator > 0, _round(cast(100.0 * numerator, Float) / denominator, 1)), else_=None)


def _count_if(condition: Any) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _window(start: date, end: date) -> tuple[datetime, datetime]:
    return (datetime.combine(start, time.min, timezone.utc),
            datetime.combine(end, time.min, timezone.utc) + timedelta(days=1))


def _floor(conn: Connection, value: Any) -> ColumnElement[Any]:
    """floor() of a non-negative number: SQLite's CAST truncates, PostgreSQL's CAST would round."""
    return func.floor(value) if conn.dialect.name == "postgresql" else cast(value, Integer)


def _percentiles(conn: Connection, key: Any, hours: Any, done: Any, where: Any, p: float) -> dict[Any, float]:
    """Per group, the ``p``-th percentile (linear interpolation) of ``hours`` over rows where ``done``."""
    ranked = (select(key.label("g"), hours.label("h"),
                     (func.row_number().over(partition_by=key, order_by=hours) - 1).label("i"),
                     func.count().over(partition_by=key).label("n"))
              .where(where, done).subquery())
    position = cast((ranked.c.n - 1) * literal(p), Float)
    floor_i = _floor(conn, position)
    fraction = position - floor_i
    weight = case((ranked.c.i == floor_i, 1.0 - fraction), (ranked.c.i == floor_i + 1, fraction), else_=0.0)
    rows = conn.execute(select(ranked.c.g, func.sum(ranked.c.h * weight))
                        .where(ranked.c.i >= floor_i, ranked.c.i <= floor_i + 1).group_by(ranked.c.g)).all()
    return {g: round(float(v), 2) for g, v in rows if v is not None}


def _scope(start: date, end: date, administration_scope: str | None, place: str | None) -> Any:
    lo, hi = _window(start, end)
    where = and_(Complaint.received_at >= lo, Complaint.received_at < hi)
    if administration_scope is not None:
        where = and_(where, or_(Complaint.administration == administration_scope,
                                Complaint.administration.like(administration_scope + ".%")))  # type: ignore[union-attr]
    if place is not None:
        where = and_(where, Complaint.place == place)
    return where


# One group for everything: an expression (PostgreSQL refuses a bare constant in GROUP BY).
TOTAL_KEY = Complaint.id * literal_column("0")  # type: ignore[operator]


def performance(conn: Connection, *, start: date, end: date, group_by: str, now: datetime,
                administration_scope: str | None = None, place: str | None = None) -> list[dict[str, Any]]:
    """One row per group (sorted by key) with the figures above; ``group_by="total"`` gives one row.

    ``place`` restricts to one place (the quarterly report of a region).
    """
    key = TOTAL_KEY if group_by == "total" else GROUPS[group_by]
    where = _scope(start, end, administration_scope, place)
    ack_decided = or_(Complaint.acknowledged_at.is_not(None), Complaint.ack_due_at < now)  # type: ignore[union-attr,operator]
    ans_decided = or_(Complaint.answered_at.is_not(None), Complaint.answer_due_at < now)  # type: ignore[union-attr,operator]
    ack_on_time = and_(Complaint.acknowledged_at.is_not(None), Complaint.acknowledged_at <= Complaint.ack_due_at)  # type: ignore[union-attr,operator]
    ans_on_time = and_(Complaint.answered_at.is_not(None), Complaint.answered_at <= Complaint.answer_due_at)  # type: ignore[union-attr,operator]
    overdue = and_(Complaint.status.in_(OPEN), or_(  # type: ignore[attr-defined]
        Complaint.answer_due_at < now, and_(Complaint.acknowledged_at.is_(None), Complaint.ack_due_at < now)))  # type: ignore[union-attr,operator]
    rows = conn.execute(
        select(
            key.label("g"), func.count().label("received"),
            _pct(_count_if(ack_on_time), _count_if(ack_decided)).label("acknowledged_on_time_pct"),
            _pct(_count_if(ans_on_time), _count_if(ans_decided)).label("answered_on_time_pct"),
            _count_if(overdue).label("overdue"),
            _pct(_count_if(Complaint.reopened_count > 0), func.count()).label("reopened_pct"),
            _pct(_count_if(Complaint.transfer_count > 0), func.count()).label("transferred_pct"),
            _round(func.avg(Complaint.satisfaction), 2).label("satisfaction"),
            func.count(Complaint.satisfaction).label("satisfaction_count"),
        ).where(where).group_by(key).order_by(key)
    ).mappings().all()
    ack_hours = _hours(conn, Complaint.acknowledged_at, Complaint.received_at)
    ans_hours = _hours(conn, Complaint.answered_at, Complaint.received_at)
    acked, answered = Complaint.acknowledged_at.is_not(None), Complaint.answered_at.is_not(None)  # type: ignore[union-attr]
    medians = {
        "median_hours_to_acknowledge": _percentiles(conn, key, ack_hours, acked, where, 0.5),
        "median_hours_to_answer": _percentiles(conn, key, ans_hours, answered, where, 0.5),
        "p90_hours_to_acknowledge": _percentiles(conn, key, ack_hours, acked, where, 0.9),
        "p90_hours_to_answer": _percentiles(conn, key, ans_hours, answered, where, 0.9),
    }
    out = []
    for row in rows:
        item: dict[str, Any] = {group_by: "all" if group_by == "total" else row["g"]}
        for name in FIELDS:
            item[name] = medians[name].get(row["g"]) if name in medians else row[name]
        for name in ("acknowledged_on_time_pct", "answered_on_time_pct", "reopened_pct", "transferred_pct",
                     "satisfaction"):
            item[name] = float(item[name]) if item[name] is not None else None
        item["received"], item["overdue"] = int(item["received"]), int(item["overdue"])
        item["satisfaction_count"] = int(item["satisfaction_count"])
        out.append(item)
    return out


def volumes(conn: Connection, *, start: date, end: date, bucket: str = "day",
            administration_scope: str | None = None, place: str | None = None) -> list[dict[str, Any]]:
    """Complaints received, and answered on time, per day or per month (by receipt), for charts."""
    formats = {"day": ("%Y-%m-%d", "YYYY-MM-DD"), "month": ("%Y-%m", "YYYY-MM")}
    lite, pg = formats[bucket]
    key = (func.to_char(Complaint.received_at, pg) if conn.dialect.name == "postgresql"
           else func.strftime(lite, Complaint.received_at))
    on_time = and_(Complaint.answered_at.is_not(None), Complaint.answered_at <= Complaint.answer_due_at)  # type: ignore[union-attr,operator]
    rows = conn.execute(select(key.label("b"), func.count().label("received"),
                               _count_if(on_time).label("answered_on_time"))
                        .where(_scope(start, end, administration_scope, place)).group_by(key).order_by(key)).all()
    return [{"bucket": b, "received": int(n), "answered_on_time": int(a)} for b, n, a in rows]
