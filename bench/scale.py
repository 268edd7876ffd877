"""The scale benchmark: PostgreSQL filled with 10k, 100k and 1M complaints, four queries timed.

    .venv/bin/python -m bench.scale --sizes 10k,100k,1M

A fresh database is created on 127.0.0.1:5432 (``BENCH_PG_ADMIN_URL``), migrated (with the
indexes of ``0002_bench_indexes``) and dropped afterwards. Complaints are generated with
realistic distributions (administrations and categories from the default configuration,
places weighted towards big cities, statuses by age, two years of dates weighted towards
recent ones, texts from the routing dev set with their stored duplicate-detection features)
and loaded with COPY, the secondary indexes being dropped during the load and rebuilt after
it. At each size it times, through the gateway's own code paths (SQLAlchemy):

- lookup by reference (``conversations.complaints.find_by_reference``), p50/p99;
- an officer's inbox first page (administration, open statuses, newest first, 50 rows);
- full-text search (``to_tsvector('simple', text) @@ plainto_tsquery``, newest 50);
- a quarter's performance report (GROUP BY administration: received, on-time percentages,
  median hours to acknowledge and answer with percentile_cont, overdue, reopened, satisfaction);

and prints how each cost grows with the data.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, create_engine, select, text
from sqlmodel import Session

from bench.common import load_texts, percentile
from bench.run import fresh_pg_database, machine
from config.loader import load_config
from conversations import reference as refs
from conversations import text_features
from conversations.complaints import OPEN_STATUSES, find_by_reference
from store.db import normalise_url
from store.models import Complaint

COLUMNS = ("reference", "kind", "text", "category", "administration", "place", "status", "language", "channel",
           "anonymous", "consent_sms", "routing_confidence", "routing_reasons", "received_at", "updated_at",
           "ack_due_at", "answer_due_at", "assigned_at", "acknowledged_at", "answered_at", "closed_at", "overdue",
           "rejected_reason", "reopened_count", "transfer_count", "satisfaction", "extra", "text_features")
CHANNELS = (("sms", 45), ("phone", 20), ("telegram", 15), ("email", 10), ("walk_in", 6), ("register", 4))
KINDS = (("complaint", 85), ("observation", 10), ("suggestion", 5))
LANGUAGES = (("ar", 50), ("fr", 35), ("en", 10), ("tzm", 5))
SEARCH_TERMS = ("eau", "coupure", "électricité", "الماء", "route", "hôpital", "garbage", "lma", "CNI", "facture")

INBOX_SQL = select(Complaint).where(
    Complaint.administration == bindparam("admin"), Complaint.status.in_(OPEN_STATUSES),  # type: ignore[attr-defined]
).order_by(Complaint.received_at.desc()).limit(50)  # type: ignore[attr-defined]
# MATERIALIZED: the matches come from the GIN index, then the newest 50 are kept. Left to itself,
# the planner may walk received_at backwards computing to_tsvector for every row until it has
# 50 matches: fast for a common word, tens of seconds for a rare one at 1M rows.
FTS_SQL = text("WITH found AS MATERIALIZED (SELECT id, reference, status, administration, received_at "
               "FROM complaints WHERE to_tsvector('simple', text) @@ plainto_tsquery('simple', :q)) "
               "SELECT * FROM found ORDER BY received_at DESC LIMIT 50")
REPORT_SQL = text("""
SELECT administration,
       count(*) AS received,
       round(100.0 * count(*) FILTER (WHERE acknowledged_at <= ack_due_at)
             / nullif(count(*) FILTER (WHERE acknowledged_at IS NOT NULL OR ack_due_at < :now), 0), 1)
           AS acknowledged_on_time_pct,
       round(100.0 * count(*) FILTER (WHERE answered_at <= answer_due_at)
             / nullif(count(*) FILTER (WHERE answered_at IS NOT NULL OR answer_due_at < :now), 0), 1)
           AS answered_on_time_pct,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - received_at) / 3600)
           AS median_hours_to_acknowledge,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM answered_at - received_at) / 3600)
           AS median_hours_to_answer,
       count(*) FILTER (WHERE overdue) AS overdue,
       round(100.0 * count(*) FILTER (WHERE reopened_count > 0) / count(*), 1) AS reopened_pct,
       round(avg(satisfaction), 2) AS satisfaction
FROM complaints
WHERE received_at >= :start AND received_at < :end
GROUP BY administration
ORDER BY administration
""")


def parse_size(value: str) -> int:
    value = value.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(value[-1:], 1)
    return int(float(value.rstrip("km")) * factor)


class Generator:
    """Complaint rows with realistic distributions, deterministic for a seed."""

    def __init__(self, seed: int = 42, now: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.now = (now or datetime.now(timezone.utc)).replace(tzinfo=None, microsecond=0)
        config = load_config()
        self.config = config
        cats = list(config.categories)
        # A few categories carry most complaints (water, electricity, roads, waste…): Zipf-like.
        self.categories = cats
        self.category_weights = [1 / (i + 1) ** 0.9 for i in range(len(cats))]
        places = list(config.places)
        self.places = places
        self.place_weights = [1 / (i + 1) ** 0.8 for i in range(len(places))]
        self.texts = load_texts()
        self.features = {t: text_features.encode(t) for t in self.texts}  # as the gateway stores them
        self.seen: set[str] = set()

    def _pick(self, pairs: Sequence[tuple[str, int]]) -> str:
        return self.rng.choices([p for p, _ in pairs], [w for _, w in pairs])[0]

    def reference(self) -> str:
        while True:
            body = str(self.rng.randrange(10_000_000, 100_000_000))
            ref = body + str(refs.damm_digit(body))
            if ref not in self.seen:
                self.seen.add(ref)
                return ref

    def ages(self, count: int) -> list[float]:
        """Ages in days over two years, denser towards today, oldest first: rows are written in
        the order they were received, as in a live database (a period is contiguous on disk)."""
        return sorted((self.rng.triangular(0, 730, 0) for _ in range(count)), reverse=True)

    def row(self, age_days: float) -> tuple[object, ...]:
        rng = self.rng
        received = self.now - timedelta(days=age_days)
        place = rng.choices(self.places, self.place_weights)[0] if rng.random() < 0.85 else None
        triage = rng.random() < 0.04
        category = None if triage else rng.choices(self.categories, self.category_weights)[0]
        administration = None if triage else self.config.administration_for(category, place)
        if triage:
            status = "new" if age_days < 30 else rng.choice(("rejected", "closed"))
        elif age_days < 15:
            status = rng.choices(("new", "assigned", "in_progress"), (5, 55, 40))[0]
        elif age_days < 60:
            status = rng.choices(("assigned", "in_progress", "answered", "closed", "rejected"), (15, 35, 40, 5, 5))[0]
        else:
            status = rng.choices(("in_progress", "answered", "closed", "rejected"), (4, 26, 60, 10))[0]
        ack_due, answer_due = received + timedelta(days=15), received + timedelta(days=60)

        def after(median_days: float, sigma: float = 0.9) -> datetime:
            delay = min(rng.lognormvariate(math.log(median_days), sigma), max(age_days, 0.01))
            return received + timedelta(days=delay)

        acknowledged = after(6) if status in ("in_progress", "answered", "closed") else None
        answered = after(28) if status in ("answered", "closed") else None
        if answered and acknowledged and answered < acknowledged:
            acknowledged = answered
        closed = (answered or after(30)) if status in ("closed", "rejected") else None
        overdue = status in OPEN_STATUSES and self.now > answer_due
        updated = max(t for t in (received, acknowledged, answered, closed) if t is not None)
        reference, kind, written = self.reference(), self._pick(KINDS), rng.choice(self.texts)
        return (
            reference, kind, written, category, administration, place, status,
            self._pick(LANGUAGES), self._pick(CHANNELS), False, True,
            None if triage else round(rng.uniform(0.5, 1.0), 2), "[]", received, updated, ack_due, answer_due,
            received if administration else None, acknowledged, answered, closed, overdue,
            "not admissible" if status == "rejected" else None, 1 if rng.random() < 0.03 else 0,
            1 if rng.random() < 0.05 else 0, rng.randint(1, 5) if status == "closed" and rng.random() < 0.4 else None,
            "{}", self.features[written],
        )


def _raw(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def fill(url: str, gen: Generator, count: int) -> float:
    """Add ``count`` complaints with COPY (secondary indexes dropped, then rebuilt); seconds taken."""
    started = time.perf_counter()
    with _raw(url) as conn:
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'complaints' AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        with conn.cursor() as cur:
            with cur.copy(f"COPY complaints ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for age in gen.ages(count):
                    copy.write_row(gen.row(age))
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("VACUUM ANALYZE complaints")
    return time.perf_counter() - started


def timed(fn: Callable[[int], object], repeat: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of ``fn(i)`` over ``repeat`` calls (after a warm-up)."""
    for i in range(min(5, repeat)):
        fn(i)
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return percentile(times, 50) * 1000, percentile(times, 99) * 1000  # type: ignore[operator]


def measure(url: str, gen: Generator, lookups: int, explain: bool) -> dict[str, tuple[float, float]]:
    engine = create_engine(normalise_url(url), pool_size=2)
    rng = random.Random(7)
    known = rng.sample(sorted(gen.seen), min(lookups, len(gen.seen)))
    admins = list(gen.config.administrations)
    with engine.connect() as conn:
        busiest = [a for a, in conn.execute(text(
            "SELECT administration FROM complaints WHERE administration IS NOT NULL "
            "GROUP BY administration ORDER BY count(*) DESC"))]
    admins = busiest or admins
    quarters = []
    q_end = gen.now.replace(day=1, hour=0, minute=0, second=0)
    q_end = q_end.replace(month=((q_end.month - 1) // 3) * 3 + 1)
    for _ in range(4):
        q_start = (q_end - timedelta(days=80)).replace(day=1)
        q_start = q_start.replace(month=((q_start.month - 1) // 3) * 3 + 1)
        quarters.append((q_start, q_end))
        q_end = q_start
    results: dict[str, tuple[float, float]] = {}
    with Session(engine) as session:
        def lookup(i: int) -> object:
            ref = known[i % len(known)] if i % 10 else gen.reference()  # one lookup in ten misses
            return find_by_reference(session, refs.format_reference(ref))

        results["lookup by reference"] = timed(lookup, lookups)
        results["inbox first page"] = timed(
            lambda i: session.exec(INBOX_SQL, params={"admin": admins[i % min(len(admins), 5)]}).all(),  # type: ignore[call-overload]
            200)
        results["full-text search"] = timed(
            lambda i: session.execute(FTS_SQL, {"q": SEARCH_TERMS[i % len(SEARCH_TERMS)]}).all(), 50)
        now = gen.now.replace(tzinfo=timezone.utc)
        results["quarterly report"] = timed(
            lambda i: session.execute(REPORT_SQL, {"start": quarters[i % 4][0], "end": quarters[i % 4][1],
                                                   "now": now.replace(tzinfo=None)}).all(), 8)
        if explain:
            inbox = str(INBOX_SQL.params(admin=admins[0]).compile(engine, compile_kwargs={"literal_binds": True}))
            for label, sql, params in (
                ("inbox", text(inbox), {}),
                ("fts", FTS_SQL, {"q": "eau"}),
                ("report", REPORT_SQL, {"start": quarters[0][0], "end": quarters[0][1], "now": now.replace(tzinfo=None)}),
            ):
                plan = session.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + str(sql)), params).all()
                print(f"-- {label}\n" + "\n".join(r[0] for r in plan), file=sys.stderr)
        session.rollback()
    engine.dispose()
    return results


def render(rows: list[tuple[int, float, dict[str, tuple[float, float]]]]) -> str:
    names = list(rows[0][2])
    head = f"{'complaints':>10}  {'fill s':>7}  " + "  ".join(f"{n + ' p50/p99 ms':>32}" for n in names)
    out = [head, "-" * len(head)]
    for size, fill_s, res in rows:
        out.append(f"{size:>10,}  {fill_s:7.1f}  " + "  ".join(f"{res[n][0]:>15.2f} / {res[n][1]:<14.2f}" for n in names))
    if len(rows) > 1:
        first = rows[0][2]
        out.append("")
        out.append("growth of p50 relative to the smallest size:")
        for size, _, res in rows[1:]:
            out.append(f"{size:>10,}  " + "  ".join(f"{n}: x{res[n][0] / first[n][0]:.1f}" for n in names))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k,100k,1M", help="complaint counts, e.g. 10k,100k,1M")
    parser.add_argument("--lookups", type=int, default=2000, help="lookups by reference per size")
    parser.add_argument("--explain", action="store_true", help="print the query plans at each size")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    sizes = sorted(parse_size(s) for s in args.sizes.split(",") if s.strip())
    print(f"machine: {machine()}", file=sys.stderr)
    gen = Generator()
    rows = []
    with fresh_pg_database("bench_scale") as url:
        have = 0
        for size in sizes:
            took = fill(url, gen, size - have)
            have = size
            print(f"  filled {size:,} complaints ({took:.1f} s); measuring", file=sys.stderr)
            rows.append((size, took, measure(url, gen, args.lookups, args.explain)))
    print(f"\n{machine()}; PostgreSQL on 127.0.0.1; fill = COPY of the new rows + index rebuild + ANALYZE")
    print(render(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{"complaints": s, "fill_s": f, **{k: {"p50_ms": v[0], "p99_ms": v[1]} for k, v in r.items()}}
                       for s, f, r in rows], fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
