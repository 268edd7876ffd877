"""In-process ingest benchmark: the cost of one inbound SMS, without HTTP or delivery.

    .venv/bin/python -m bench.ingest [--db sqlite|postgres|both] [--messages 2000] [--batch 32] [--job 8]

Each message comes from a new number with a text of the routing dev set, so it creates a routed
complaint (duplicates searched) with its acknowledgement in the outbox, exactly as a webhook
would. Messages are ingested in group commits of ``--batch``, as the gateway does under load.
Then the acknowledgements are claimed and recorded as sent in jobs of ``--job`` ids, as a
delivery worker does, without sending them (row "delivery": the worker's database bookkeeping).
Printed per message: CPU time (``time.process_time``), wall time, and SQL statements sent to the
database (``BEGIN``/``COMMIT`` included), after a warm-up; the baseline in the same run is a bare
``SELECT 1`` transaction per message on the same database. The CPU figure is the robust one: it
does not depend on what else the machine runs.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from bench.common import PUBLIC_URL, SMS_NUMBER, TWILIO_SID, TWILIO_TOKEN, Numbers, load_texts
from bench.run import BENCH_CONFIG, fresh_pg_database


class StatementCounter:
    """Counts the statements each DBAPI connection of an engine runs, below SQLAlchemy (so the
    statements of ``store.fast``'s DBAPI path count too)."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", lambda conn, _record: conn.set_trace_callback(self._one))
        else:
            import psycopg

            counter = self

            def counting(cursor_class: type) -> type:
                class CountingCursor(cursor_class):  # type: ignore[valid-type,misc]
                    def execute(self, *args: Any, **kwargs: Any) -> Any:
                        counter.count += 1
                        return super().execute(*args, **kwargs)

                    def executemany(self, *args: Any, **kwargs: Any) -> Any:
                        counter.count += 1  # one pipelined round of statements
                        return super().executemany(*args, **kwargs)
                return CountingCursor

            counting_cursor = counting(psycopg.Cursor)
            # store.fast runs its statements on a RawCursor it makes itself: counted there.
            psycopg.RawCursor = counting(psycopg.RawCursor)  # type: ignore[misc]

            def connected(conn: Any, _record: Any) -> None:
                conn.cursor_factory = counting_cursor
                real_commit = conn.commit

                def commit() -> None:
                    counter.count += 1
                    real_commit()
                conn.commit = commit

            event.listen(engine, "connect", connected)

    def _one(self, _sql: str) -> None:
        self.count += 1


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "postgres":
        with fresh_pg_database("bench_ingest") as url:
            yield url
        return
    from store.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as work:
        url = f"sqlite:///{Path(work) / 'gateway.sqlite3'}"
        upgrade(url)
        yield url


def build(url: str, work: Path) -> Any:
    from config.loader import load_config
    from config.settings import load_settings
    from gateway.context import build_gateway

    config_file = work / "bench.toml"
    config_file.write_text(BENCH_CONFIG)
    settings = load_settings(database_url=url, public_url=PUBLIC_URL, twilio_account_sid=TWILIO_SID,
                             twilio_auth_token=TWILIO_TOKEN, twilio_api_base="http://127.0.0.1:9",
                             sms_number=SMS_NUMBER, country="MA", data_dir=str(work / "var"))
    return build_gateway(settings, load_config(str(config_file)))


def measure(run: Callable[[int], None], messages: int, batch: int, counter: StatementCounter) -> dict[str, float]:
    statements = counter.count
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, messages, batch):
        run(min(batch, messages - start))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms": cpu / messages * 1e3, "wall_ms": wall / messages * 1e3,
            "statements": (counter.count - statements) / messages, "per_s": messages / wall}


def bench(kind: str, messages: int, warmup: int, batch: int, job: int = 8) -> dict[str, dict[str, float]]:
    from conversations.delivery import Delivery
    from conversations.dialogue import text_dialogue
    from conversations.ingest import ingest_batch_sync
    from conversations.messages import InboundMessage, SendResult

    texts, numbers = load_texts(), Numbers()
    sequence = iter(range(10**9))

    def inbound() -> InboundMessage:
        i, number = next(sequence), numbers.take()
        return InboundMessage(channel="sms", provider_message_id=f"SMbench{i:026d}", sender=f"tel:{number}",
                              service_address=SMS_NUMBER, text=f"{texts[i % len(texts)]} {number[-6:]}",
                              received_at=datetime.now(timezone.utc))

    with database(kind) as url, tempfile.TemporaryDirectory(prefix="bench-ingest-") as work:
        gateway = build(url, Path(work))
        core = gateway.core
        counter = StatementCounter(core.db.engine)
        queued: list[int] = []

        def ingest(n: int) -> None:
            for outcome in ingest_batch_sync(core, [(inbound(), text_dialogue) for _ in range(n)]):
                if isinstance(outcome, BaseException):
                    raise outcome
                queued.extend(outcome.outbox_ids)

        worker = Delivery(core, gateway.adapters, worker_id="bench")
        to_deliver = iter(queued)

        def deliver(n: int) -> None:
            claims = worker.claim_sync([next(to_deliver) for _ in range(n)])
            if len(claims) != n:
                raise RuntimeError(f"claimed {len(claims)} of {n} rows")
            worker.record_sent_many_sync([(c, SendResult(f"SMbench{c.outbox_id}")) for c in claims])

        def baseline(n: int) -> None:
            for _ in range(n):
                with core.db.session() as session:
                    session.execute(text("SELECT 1"))

        try:
            measure(ingest, warmup, batch, counter)
            figures = {"baseline": measure(baseline, messages, 1, counter),
                       "ingest": measure(ingest, messages, batch, counter)}
            measure(deliver, warmup, job, counter)
            figures["delivery"] = measure(deliver, messages, job, counter)
            return figures
        finally:
            gateway.db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32, help="messages per group commit (default 32)")
    parser.add_argument("--job", type=int, default=8, help="outbox ids per delivery job (default 8)")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(f"{'database':<10} {'what':<9} {'CPU ms/msg':>10} {'wall ms/msg':>11} {'msg/s':>8} {'statements/msg':>14}"
          f" {'CPU x baseline':>14}")
    for kind in kinds:
        figures = bench(kind, args.messages, args.warmup, args.batch, args.job)
        for what, f in figures.items():
            ratio = f["cpu_ms"] / figures["baseline"]["cpu_ms"]
            print(f"{kind:<10} {what:<9} {f['cpu_ms']:>10.3f} {f['wall_ms']:>11.3f} {f['per_s']:>8.0f} "
                  f"{f['statements']:>14.1f} {ratio:>14.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
