"""Claiming and recording outbox rows, on both databases: one holder at a time, leases that
expire, a lost lease recording nothing, and what a successful send writes on its message."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlmodel import select, update

from conversations.clock import FixedClock
from conversations.delivery import Claim, Delivery
from conversations.messages import InboundMessage, SendResult
from store.models import Complaint, Message, Outbox

TEXTS = ["Pas d'eau au robinet depuis trois jours à Oran",
         "Hello, the street lamps in our street have been off for a week",
         "السلام عليكم الماء مقطوع عندنا في الحي منذ يومين"]


@pytest.fixture
def clock() -> FixedClock:
    """The gateway's clock (the outbox dates its rows by the real time: see ``replies_queued``)."""
    return FixedClock(datetime.now(timezone.utc).replace(microsecond=0))


def replies_queued(gw: Any, n: int) -> list[int]:
    """Ingest ``n`` complaints from new numbers: the outbox ids of their acknowledgements. The
    gateway's clock is then put a second past the real time, so that the rows are due."""
    ids: list[int] = []
    for i in range(n):
        result = gw.core.ingest_in_session(InboundMessage(
            channel="sms", provider_message_id=f"SM{i:032d}", sender=f"tel:+2126{20_000_000 + i}",
            service_address="+212522000000", text=TEXTS[i % len(TEXTS)], received_at=gw.core.clock.now()))
        ids.extend(result.outbox_ids)
    assert len(ids) == n
    gw.core.clock.at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    return ids


def rows(gw: Any) -> dict[int, tuple[Outbox, Message]]:
    with gw.db.session() as s:
        return {o.id: (o, s.get(Message, o.message_id)) for o in s.exec(select(Outbox)).all()}


def sent(claims: list[Claim], status: str = "sent") -> list[tuple[Claim, SendResult]]:
    return [(c, SendResult(f"SM-{c.outbox_id}", status=status, thread_ref=None)) for c in claims]


def test_a_row_has_one_holder_until_its_lease_expires(db_url: str, make_gateway: Any, clock: FixedClock) -> None:
    gw = make_gateway(db_url, clock=clock, delivery_lease_seconds=60)
    ids = replies_queued(gw, 3)
    now = clock.now()
    a, b = (Delivery(gw.core, gw.adapters, worker_id=w) for w in ("a", "b"))

    claims = a.claim_sync(list(reversed(ids)))
    assert [c.outbox_id for c in claims] == sorted(ids)
    assert all(c.attempts == 1 and not c.was_in_flight and c.since == now for c in claims)
    with gw.db.session() as s:
        references = {c.id: c.reference for c in s.exec(select(Complaint)).all()}
    for claim in claims:
        outbox, message = rows(gw)[claim.outbox_id]
        assert (outbox.status, outbox.locked_by, outbox.attempts) == ("sending", "a", 1)
        assert outbox.locked_until is not None and outbox.locked_until.replace(tzinfo=timezone.utc) == now + timedelta(seconds=60)
        assert claim.message.message_id == message.id and claim.message.to == message.urn
        assert claim.message.text == message.text and claim.message.channel == "sms"
        assert claim.message.reference == references[message.complaint_id]
    assert b.claim_sync(ids) == [] and b.claim_sync(None, 10) == []

    clock.advance(timedelta(seconds=61))  # a died (or hangs): its lease has expired
    again = b.claim_sync(ids)
    assert [c.outbox_id for c in again] == sorted(ids)
    assert all(c.attempts == 2 and c.was_in_flight for c in again)

    a.record_sent_many_sync(sent(claims))  # a's lease was lost: nothing it records counts
    assert all(o.status == "sending" and o.locked_by == "b" and m.status == "queued" and m.provider_message_id is None
               for o, m in rows(gw).values())

    b.record_sent_many_sync(sent(again[:2]) + sent(again[2:], status="sandbox"))
    for claim in again:
        outbox, message = rows(gw)[claim.outbox_id]
        assert (outbox.status, outbox.locked_until, outbox.last_error) == ("sent", None, None)
        assert message.provider_message_id == f"SM-{claim.outbox_id}"
        assert message.sent_at is not None and message.sent_at.replace(tzinfo=timezone.utc) == now + timedelta(seconds=61)
        assert message.status == ("sandbox" if claim is again[2] else "sent")
    assert b.claim_sync(ids) == [] and a.claim_sync(None, 10) == []


def test_claiming_due_rows_takes_the_oldest_up_to_the_limit(db_url: str, make_gateway: Any,
                                                            clock: FixedClock) -> None:
    gw = make_gateway(db_url, clock=clock)
    ids = replies_queued(gw, 5)
    delivery = Delivery(gw.core, gw.adapters, worker_id="w")
    assert delivery.claim_sync([]) == []
    first = delivery.claim_sync(None, 2)
    rest = delivery.claim_sync(None, 10)
    assert [c.outbox_id for c in first] == ids[:2] and [c.outbox_id for c in rest] == ids[2:]


def test_a_send_that_may_have_reached_the_provider_is_claimed_as_in_flight(db_url: str, make_gateway: Any,
                                                                           clock: FixedClock) -> None:
    gw = make_gateway(db_url, clock=clock)
    [outbox_id] = replies_queued(gw, 1)
    with gw.db.session() as s:
        row = s.get(Outbox, outbox_id)
        message = s.get(Message, row.message_id)
        message.raw = {**message.raw, "maybe_sent": True}
        s.add(message)
    clock.advance(timedelta(minutes=5))
    [claim] = Delivery(gw.core, gw.adapters, worker_id="w").claim_sync([outbox_id])
    created = rows(gw)[outbox_id][0].created_at.replace(tzinfo=timezone.utc)
    assert claim.was_in_flight and claim.since == created  # the provider is asked from when the row was made


def test_concurrent_claims_share_the_rows_out_without_overlap(db_url: str, make_gateway: Any,
                                                             clock: FixedClock) -> None:
    gw = make_gateway(db_url, clock=clock)
    ids = replies_queued(gw, 12)
    workers = [Delivery(gw.core, gw.adapters, worker_id=f"w{i}") for i in range(4)]
    taken: dict[str, list[int]] = {}
    start = threading.Barrier(len(workers))

    def claim(worker: Delivery) -> None:
        start.wait()
        taken[worker.worker_id] = [c.outbox_id for c in worker.claim_sync(ids)]

    threads = [threading.Thread(target=claim, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [i for got in taken.values() for i in got]
    assert sorted(every) == sorted(ids), (taken, {o.id: (o.status, o.locked_by) for o, _ in rows(gw).values()})
    holders = {o.id: o.locked_by for o, _ in rows(gw).values()}
    assert all(holders[i] == worker for worker, got in taken.items() for i in got)


def test_a_claim_that_waited_for_another_takes_none_of_its_rows(db_url: str, make_gateway: Any,
                                                                clock: FixedClock) -> None:
    """The rows are checked again once the other claimer lets go of them: what it took (or what
    became not due meanwhile) is not taken a second time."""
    gw = make_gateway(db_url, clock=clock)
    ids = replies_queued(gw, 4)
    waiting = Delivery(gw.core, gw.adapters, worker_id="second")
    taken: list[list[int]] = []
    with gw.db.session() as first:
        first.exec(update(Outbox).where(Outbox.id.in_(ids[:3])).values(  # type: ignore[attr-defined,call-overload]
            status="sending", locked_by="first", locked_until=clock.now() + timedelta(minutes=1)))
        thread = threading.Thread(target=lambda: taken.append([c.outbox_id for c in waiting.claim_sync(ids)]))
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # it waits for the first claimer's transaction
    thread.join(30)
    assert taken == [ids[3:]]
    assert {o.id: o.locked_by for o, _ in rows(gw).values()} == {**{i: "first" for i in ids[:3]}, ids[3]: "second"}
