"""Group commit: concurrent ingests share a transaction, lose nothing and keep their own outcome."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, literal
from sqlalchemy import select as select_core
from sqlalchemy.exc import IntegrityError
from sqlalchemy.dialects import postgresql
from sqlmodel import func, select

from conversations import ingest as ingest_module
from conversations.core import IngestBacklogFull
from conversations.identities import resolve
from conversations.messages import InboundMessage
from store import fast
from store.models import Complaint, ComplaintEvent, Contact, Conversation, Identity, Message, Outbox
from tests.channels.sms.test_sms_flow import sms
from tests.conftest import post_signed
from tests.support.db import truncate_all

TEXTS = [
    "Pas d'eau au robinet depuis trois jours à Oran",
    "Hello, the street lamps in our street have been off for a week",
    "السلام عليكم الماء مقطوع عندنا في الحي منذ يومين",
]


def inbound(i: int, sender: str | None = None, text: str | None = None, pid: str | None = None) -> InboundMessage:
    return InboundMessage(channel="sms", provider_message_id=pid or f"SM{i:032d}",
                          sender=sender or f"tel:+2126{10_000_000 + i}", service_address="+212522000000",
                          text=text or TEXTS[i % len(TEXTS)], received_at=datetime.now(timezone.utc))


def count(gw: Any, model: Any, *where: Any) -> int:
    with gw.db.session() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def hold_database(gw: Any) -> asyncio.Event:
    """Database work waits until the returned event is set (so requests pile up meanwhile)."""
    gate = asyncio.Event()
    real_run = gw.db.run

    async def held(fn: Any, *args: Any) -> Any:
        await gate.wait()
        return await real_run(fn, *args)

    gw.db.run = held
    return gate


def spy_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    real = ingest_module.ingest_batch_sync

    def spy(core: Any, batch: list[Any]) -> Any:
        sizes.append(len(batch))
        return real(core, batch)

    monkeypatch.setattr("conversations.core.ingest_batch_sync", spy)
    return sizes


async def test_concurrent_messages_share_transactions(db_url, make_gateway, monkeypatch) -> None:
    gw = make_gateway(db_url)
    sizes = spy_batches(monkeypatch)
    # A second message from the sender of message 1 and a provider retry of it, in the same burst:
    # each sees what the ones before it wrote.
    burst = [inbound(i) for i in range(40)]
    burst += [inbound(100, sender=burst[1].sender, pid="SM-retry"), inbound(101, sender=burst[1].sender, pid="SM-retry")]
    results = await asyncio.gather(*(gw.core.ingest(m) for m in burst))
    assert max(sizes) > 1, "concurrent messages should have been written together"
    assert sum(sizes) == len(burst)
    assert [r.duplicate for r in results] == [False] * 41 + [True]
    assert results[-1].message_id == results[-2].message_id
    assert all(r.created_complaint and r.complaint_reference for r in results[:40])
    assert len({r.complaint_reference for r in results[:40]}) == 40
    assert results[40].action == "follow_up" and results[40].complaint_id == results[1].complaint_id
    assert count(gw, Message, Message.direction == "in") == 41
    assert count(gw, Complaint) == 40
    assert count(gw, Outbox) == 41  # an acknowledgement each


async def test_a_failing_message_costs_the_others_nothing(db_url, make_gateway, monkeypatch) -> None:
    gw = make_gateway(db_url)
    sizes = spy_batches(monkeypatch)
    real = ingest_module._ingest_one

    def failing(core: Any, session: Any, message: InboundMessage, dialogue: Any, detected: Any) -> Any:
        if message.text == "boom":
            raise RuntimeError("dialogue bug")
        return real(core, session, message, dialogue, detected)

    monkeypatch.setattr(ingest_module, "_ingest_one", failing)
    burst = [inbound(i) for i in range(10)]
    burst.insert(5, inbound(50, text="boom"))
    outcomes = await asyncio.gather(*(gw.core.ingest(m) for m in burst), return_exceptions=True)
    assert max(sizes) > 1
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and "dialogue bug" in str(failed[0])
    assert outcomes.index(failed[0]) == 5
    assert count(gw, Message, Message.direction == "in") == 10
    assert count(gw, Complaint) == 10
    assert count(gw, Outbox) == 10
    # Nothing of the failed message, nor a trace of the rolled-back batch, is left.
    assert count(gw, Contact) == 10


async def test_backlog_is_shed_only_for_providers_that_retry(sqlite_url, make_gateway) -> None:
    gw = make_gateway(sqlite_url, max_pending_ingests=3)
    gate = hold_database(gw)
    first = asyncio.ensure_future(gw.core.ingest(inbound(0), shed=True))
    await asyncio.sleep(0)  # its batch is being written: the next ones wait
    waiting = [asyncio.ensure_future(gw.core.ingest(inbound(i), shed=True)) for i in range(1, 4)]
    await asyncio.sleep(0)
    with pytest.raises(IngestBacklogFull):
        await gw.core.ingest(inbound(9), shed=True)
    unshed = asyncio.ensure_future(gw.core.ingest(inbound(10)))  # e.g. an IVR recording: queued anyway
    gate.set()
    results = await asyncio.gather(first, *waiting, unshed)
    assert all(r.created_complaint for r in results)
    assert count(gw, Complaint) == 5


async def test_sms_webhook_answers_503_with_retry_after_when_overloaded(sqlite_url, make_gateway,
                                                                       start_client) -> None:
    gw = make_gateway(sqlite_url, max_pending_ingests=1)
    client = await start_client(gw, background=False)
    gate = hold_database(gw)
    path = "/webhooks/twilio/sms"

    async def until(predicate: Any) -> None:
        for _ in range(500):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition not met")

    def batcher() -> Any:
        return gw.core._batcher  # noqa: SLF001

    first = asyncio.ensure_future(post_signed(client, path, sms("Pas d'eau à Oran", "+212611111111")))
    await until(lambda: batcher() is not None and batcher()._writers == 1 and not batcher()._pending)
    second = asyncio.ensure_future(post_signed(client, path, sms("Pas d'eau à Oran", "+212611111112")))
    await until(lambda: batcher()._pending)  # the first is being written, the second waits
    shed = await asyncio.wait_for(post_signed(client, path, sms("Pas d'eau à Oran", "+212611111113")), 10)
    assert shed.status == 503 and shed.headers["Retry-After"]
    gate.set()
    assert (await first).status == 200 and (await second).status == 200
    assert count(gw, Message, Message.direction == "in") == 2


@pytest.mark.parametrize("children", [1, 2])
def test_a_row_with_its_children_and_links_unless_taken(db_url, make_gateway, children: int) -> None:
    """A complaint with its first events, and its conversation pointed at it, in one go (one
    statement on PostgreSQL): all written, or, when the reference is taken, nothing at all."""
    gw = make_gateway(db_url)
    now = datetime.now(timezone.utc)
    events = [dict(at=now, actor="citizen", type=f"event{i}", from_status=None, to_status="new", note=None,
                   data={"i": i}) for i in range(children)]
    table = ComplaintEvent.__table__  # type: ignore[attr-defined]
    with gw.db.session() as session:
        contact, identity = resolve(session, "tel:+212600000009")
        conversation_id = fast.new(session, Conversation, contact_id=contact.id, identity_id=identity.id,
                                   channel="sms", created_at=now, last_message_at=now).id

    def new(reference: str) -> tuple[Complaint | None, int | None]:
        """The complaint, and what the conversation's object says it points at."""
        with gw.db.session() as session:
            conversation = session.get(Conversation, conversation_id)
            created = fast.new_with_children_unless_taken(
                session, Complaint, ("reference",), dict(reference=reference, channel="sms", text="x", received_at=now,
                                                          updated_at=now),
                table, events, "complaint_id", pointing=(conversation,))
            return created, conversation.complaint_id  # type: ignore[union-attr]

    first, pointed = new("100000001")
    assert first is not None and pointed == first.id
    assert new("100000001") == (None, first.id)
    with gw.db.session() as session:
        stored = session.exec(select(ComplaintEvent).order_by(ComplaintEvent.id)).all()  # type: ignore[arg-type]
        assert [(e.complaint_id, e.type, e.data, e.at) for e in stored] == \
            [(first.id, f"event{i}", {"i": i}, now) for i in range(children)]
        assert session.exec(select(func.count()).select_from(Complaint)).one() == 1
        assert session.get(Conversation, conversation_id).complaint_id == first.id  # type: ignore[union-attr]
    if gw.db.engine.dialect.name == "postgresql":
        assert any(key[0] == "family" for key in fast._PREPARED)  # noqa: SLF001  (the one-statement path)


def test_a_chain_of_rows_each_pointing_at_earlier_ones(db_url, make_gateway) -> None:
    """fast.new_chain: a new sender's contact, identity, conversation and message, each link
    column given the id of the row it names; one statement on PostgreSQL; a taken URN raises
    IntegrityError, as the ORM would."""
    gw = make_gateway(db_url)
    now = datetime.now(timezone.utc)
    rows = [
        (Contact, dict(language="fr", created_at=now), {}),
        (Identity, dict(urn="tel:+212600000555", scheme="tel", created_at=now, extra={}), {"contact_id": 0}),
        (Conversation, dict(channel="sms", state={}, created_at=now, last_message_at=now),
         {"contact_id": 0, "identity_id": 1}),
        (Message, dict(direction="in", channel="sms", provider_message_id="SMchain", urn="tel:+212600000555",
                       text="bonjour", status="received", created_at=now), {"contact_id": 0, "identity_id": 1,
                                                                          "conversation_id": 2}),
    ]
    with gw.db.session() as session:
        contact, identity, conversation, message = fast.new_chain(session, rows)
        ids = (contact.id, identity.id, conversation.id, message.id)
        assert identity.contact_id == contact.id and conversation.identity_id == identity.id  # type: ignore[attr-defined]
        assert (message.contact_id, message.identity_id, message.conversation_id) == ids[:3]  # type: ignore[attr-defined]
    with gw.db.session() as session:
        stored = session.get(Message, ids[3])
        assert stored is not None and (stored.contact_id, stored.identity_id, stored.conversation_id) == ids[:3]
        assert stored.text == "bonjour" and session.get(Identity, ids[1]).contact_id == ids[0]  # type: ignore[union-attr]
        assert session.get(Conversation, ids[2]).contact_id == ids[0]  # type: ignore[union-attr]
    if gw.db.engine.dialect.name == "postgresql":
        assert any(runner is not None for key, runner in fast._PREPARED.items()  # noqa: SLF001
                   if key[0] == "chain" and [table for table, _, _ in key[2]]
                   == ["contacts", "identities", "conversations", "messages"])
    with gw.db.session() as session, pytest.raises(IntegrityError):
        fast.new_chain(session, rows[:2])


def test_prepared_insert_maps_constraint_errors(db_url, make_gateway) -> None:
    """The DBAPI fast path raises SQLAlchemy's IntegrityError, as the ORM path would."""
    gw = make_gateway(db_url)
    table = Contact.__table__  # type: ignore[attr-defined]
    now = datetime.now(timezone.utc)
    with gw.db.session() as session:
        first = fast.insert_row(session, table, dict(language="fr", display_name=None, created_at=now,
                                                      opted_out=False, opted_out_at=None, anonymised_at=None))
        # The DBAPI path itself was taken (not SQLAlchemy's execute, which raises the same error).
        dialect = session.connection().dialect.name
        keys = ("language", "display_name", "created_at", "opted_out", "opted_out_at", "anonymised_at")
        assert fast._PREPARED[(dialect, "contacts", keys, True, ())] is not None  # noqa: SLF001
        with pytest.raises(IntegrityError):
            fast.insert_row(session, table, dict(id=first, language="fr", display_name=None, created_at=now,
                                                 opted_out=False, opted_out_at=None, anonymised_at=None))
        session.rollback()
    with gw.db.session() as session:
        contact = fast.new(session, Contact, language="ar", created_at=now)
    with gw.db.session() as session:
        stored = session.get(Contact, contact.id)
        assert stored is not None and stored.language == "ar" and stored.created_at == now


_IDENTITIES = Identity.__table__  # type: ignore[attr-defined]
_CONTACTS = Contact.__table__  # type: ignore[attr-defined]
_BY_URN_WITH_TAG = select_core(
    _IDENTITIES.c.id, _IDENTITIES.c.created_at, _IDENTITIES.c.extra, _IDENTITIES.c.unreachable,
    literal("tag").label("tag"), _CONTACTS.c.language, _CONTACTS.c.opted_out_at,
).join(_CONTACTS, _CONTACTS.c.id == _IDENTITIES.c.contact_id).where(
    _IDENTITIES.c.urn == bindparam("urn"), _IDENTITIES.c.created_at >= bindparam("since"))
_URNS_BY_ID = select_core(_IDENTITIES.c.urn).where(_IDENTITIES.c.id.in_(bindparam("ids", expanding=True)))


def test_query_returns_what_sqlalchemy_returns(db_url, make_gateway) -> None:
    """fast.query runs on the DBAPI cursor with SQLAlchemy's bind and result processors: the
    same rows (UTC datetimes, JSON, booleans, a literal) as SQLAlchemy's own execution, on both
    databases, seeing the session's unflushed objects; what it cannot prepare (an expanding IN)
    SQLAlchemy runs."""
    gw = make_gateway(db_url)
    at = datetime(2026, 12, 7, 11, 30, 15, 123456, tzinfo=timezone.utc)
    with gw.db.session() as session:
        contact = Contact(language="ar", created_at=at)
        session.add(contact)
        session.flush()
        session.add(Identity(contact_id=contact.id, urn="tel:+212600000777", scheme="tel", created_at=at,
                             extra={"via": ["sms", 1]}))  # not flushed: query() flushes first
        params = {"urn": "tel:+212600000777", "since": at}
        rows = fast.query(session, _BY_URN_WITH_TAG, params)
        assert rows == [tuple(row) for row in session.connection().execute(_BY_URN_WITH_TAG, params)]
        assert rows.keys == ("id", "created_at", "extra", "unreachable", "tag", "language", "opted_out_at")
        found = rows.mapping()
        assert found is not None and found["created_at"] == at and found["created_at"].tzinfo is not None
        assert found["extra"] == {"via": ["sms", 1]} and found["unreachable"] is False and found["tag"] == "tag"
        assert rows.scalar() == found["id"]
        if gw.db.engine.dialect.name == "postgresql":
            assert any(runner is not None for stmt, runner in fast._KEPT.values()  # noqa: SLF001
                       if stmt is _BY_URN_WITH_TAG)
        later = fast.query(session, _BY_URN_WITH_TAG, {**params, "since": at + timedelta(microseconds=1)})
        assert later == [] and later.mapping() is None and later.scalar() is None
        assert fast.query(session, _URNS_BY_ID, {"ids": [found["id"], -1]}) == [("tel:+212600000777",)]
        assert all(runner is None for stmt, runner in fast._KEPT.values() if stmt is _URNS_BY_ID)  # noqa: SLF001


def test_statements_built_on_every_call_do_not_fill_the_cache(sqlite_url, make_gateway, monkeypatch) -> None:
    """Past its limit, fast's cache of kept statements takes no new ones: they run through
    SQLAlchemy, with the same rows."""
    gw = make_gateway(sqlite_url)
    monkeypatch.setattr(fast, "_KEPT", {})
    monkeypatch.setattr(fast, "_KEPT_LIMIT", 3)
    with gw.db.session() as session:
        for i in range(10):
            stmt = select_core(literal(i).label("n"), bindparam("x"))
            assert fast.query(session, stmt, {"x": "y"}) == [(i, "y")]
    assert len(fast._KEPT) == 3  # noqa: SLF001


def test_statements_are_numbered_once_for_psycopg() -> None:
    """store.fast hands psycopg ``$n`` statements (no parsing per execution): a name used twice
    keeps its number, ``%%`` is a literal ``%``, and ``%%(x)s`` is literal text, not a parameter."""
    sql, names = fast._numbered("SELECT %(a)s, %(b_1)s, %(a)s, 'x%%', '%%(c)s' WHERE y LIKE %(c)s")  # noqa: SLF001
    assert sql == "SELECT $1, $2, $1, 'x%', '%(c)s' WHERE y LIKE $3"
    assert names == ["a", "b_1", "c"]


async def test_backlog_is_shed_once_the_oldest_waited_too_long(sqlite_url, make_gateway) -> None:
    gw = make_gateway(sqlite_url, max_ingest_wait_seconds=0.05)
    gate = hold_database(gw)
    first = asyncio.ensure_future(gw.core.ingest(inbound(0), shed=True))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(gw.core.ingest(inbound(1), shed=True))
    await asyncio.sleep(0)
    third = asyncio.ensure_future(gw.core.ingest(inbound(2), shed=True))  # the second only just arrived
    await asyncio.sleep(0.1)
    with pytest.raises(IngestBacklogFull, match="oldest for"):
        await gw.core.ingest(inbound(3), shed=True)
    gate.set()
    results = await asyncio.gather(first, second, third)
    assert all(r.created_complaint for r in results)
    assert count(gw, Complaint) == 3


def test_the_provider_id_lookup_uses_the_unique_index_in_a_generic_plan(pg_database) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL plans a prepared statement once and keeps that plan; made on an empty table,
    it must still look the message up by the unique index, not scan every message of the
    channel (migration 0004 removed the index that tied with it)."""
    import re

    import psycopg

    truncate_all(pg_database)
    params: list[str] = []

    def numbered(match: re.Match[str]) -> str:  # %(name)s -> $n, as PREPARE wants
        if match[1] not in params:
            params.append(match[1])
        return f"${params.index(match[1]) + 1}"

    sql = re.sub(r"%\((\w+)\)s", numbered, str(ingest_module._FIRST_LOOK.compile(dialect=postgresql.dialect())))
    values = {"channel": "'sms'", "pid": "'SM1'", "urn": "'tel:+212600000000'", "param_1": "1"}
    with psycopg.connect(pg_database.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE looked AS {sql}")
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN EXECUTE looked({', '.join(values[p] for p in params)})"))
    assert "uq_messages_channel_provider_id" in plan, plan
