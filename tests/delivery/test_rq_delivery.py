"""Delivery through real Redis and real RQ worker processes (`gateway worker`)."""
from __future__ import annotations

import asyncio
import signal
from typing import Any

from sqlmodel import func, select

from store.models import Complaint, Message, Outbox
from tests.channels.sms.test_sms_flow import CITIZEN, replies, send
from tests.conftest import PUBLIC_URL, SMS_NUMBER, TWILIO_SID, TWILIO_TOKEN, wait_until
from tests.support.processes import gateway_env


def worker_env(db_url: str, redis: tuple[str, str], fake: Any, lease: str = "60") -> dict[str, str]:
    return gateway_env(database_url=db_url, redis_url=redis[0], queue_name=redis[1], public_url=PUBLIC_URL,
                       twilio_account_sid=TWILIO_SID, twilio_auth_token=TWILIO_TOKEN,
                       twilio_api_base=fake.base_url, sms_number=SMS_NUMBER, delivery_lease_seconds=lease,
                       log_level="WARNING")


def outbox_status(gw: Any) -> list[str]:
    with gw.db.session() as s:
        return list(s.exec(select(Outbox.status).order_by(Outbox.id)).all())


async def test_rq_workers_deliver_exactly_once(db_url, make_gateway, start_client, fake_twilio, redis_queue,
                                               processes) -> None:
    gw = make_gateway(db_url, redis_url=redis_queue[0], queue_name=redis_queue[1])
    client = await start_client(gw)
    workers = [processes("worker", env=worker_env(db_url, redis_queue, fake_twilio)) for _ in range(2)]
    numbers = [f"+2126{i:08d}" for i in range(20)]
    await asyncio.gather(*(send(client, "Pas d'eau au robinet depuis hier soir dans notre immeuble", n)
                           for n in numbers))
    await send(client, "Pas d'eau au robinet depuis hier soir", numbers[0], sid="SM" + "5" * 32)
    await send(client, "Pas d'eau au robinet depuis hier soir", numbers[0], sid="SM" + "5" * 32)  # a retry
    await wait_until(lambda: len(fake_twilio.messages) >= 21, timeout=30)
    await wait_until(lambda: all(s == "sent" for s in outbox_status(gw)), timeout=15)
    await asyncio.sleep(0.5)
    per_number = {n: len(fake_twilio.to(n)) for n in numbers}
    assert per_number[numbers[0]] == 2 and all(v == 1 for n, v in per_number.items() if n != numbers[0])
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(Complaint)).one() == 20
    for worker in workers:
        assert worker.proc.poll() is None, worker.output()


async def test_rq_transient_error_is_retried_and_sent_once(db_url, make_gateway, start_client, fake_twilio,
                                                           redis_queue, processes) -> None:
    gw = make_gateway(db_url, redis_url=redis_queue[0], queue_name=redis_queue[1])
    client = await start_client(gw)
    fake_twilio.fail_next(500)
    processes("worker", env=worker_env(db_url, redis_queue, fake_twilio))
    await send(client, "Hello, power cut in our neighbourhood since this morning")
    await replies(fake_twilio, CITIZEN, 1)
    await wait_until(lambda: outbox_status(gw) == ["sent"], timeout=15)
    assert len(fake_twilio.requests) == 2 and len(fake_twilio.messages) == 1


async def test_worker_killed_mid_send_delivers_exactly_once(db_url, make_gateway, start_client, fake_twilio,
                                                            redis_queue, processes) -> None:
    """The provider accepted the message but the worker died before recording it: the next worker
    finds it at the provider (reconcile) and does not send it again."""
    gw = make_gateway(db_url, redis_url=redis_queue[0], queue_name=redis_queue[1])
    client = await start_client(gw)
    fake_twilio.hang_next(2.0)  # accepted after 2 s, however the client fares
    first = processes("worker", env=worker_env(db_url, redis_queue, fake_twilio, lease="3"))
    await send(client, "Bonjour, les ordures ne sont plus ramassées dans notre rue")
    await wait_until(lambda: fake_twilio.requests, timeout=20)
    await wait_until(lambda: outbox_status(gw) == ["sending"], timeout=10)
    first.kill(signal.SIGKILL)
    await wait_until(lambda: len(fake_twilio.messages) == 1, timeout=10)  # the provider got it
    processes("worker", env=worker_env(db_url, redis_queue, fake_twilio, lease="3"))
    await wait_until(lambda: outbox_status(gw) == ["sent"], timeout=30)
    await asyncio.sleep(1.0)
    assert len(fake_twilio.messages) == 1 and len(fake_twilio.requests) == 1
    with gw.db.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
        assert out.provider_message_id == fake_twilio.messages[0]["sid"] and out.status == "sent"


async def test_worker_killed_before_provider_accepted_sends_once(db_url, make_gateway, start_client, fake_twilio,
                                                                 redis_queue, processes) -> None:
    """The worker died and the provider never accepted: the next worker sends it, once."""
    gw = make_gateway(db_url, redis_url=redis_queue[0], queue_name=redis_queue[1])
    client = await start_client(gw)
    fake_twilio.fail_next(503, delay=2.0)  # hangs, then fails: nothing accepted
    first = processes("worker", env=worker_env(db_url, redis_queue, fake_twilio, lease="3"))
    await send(client, "Hello, there is a dangerous pothole on the main road")
    await wait_until(lambda: fake_twilio.requests, timeout=20)
    first.kill(signal.SIGKILL)
    processes("worker", env=worker_env(db_url, redis_queue, fake_twilio, lease="3"))
    await replies(fake_twilio, CITIZEN, 1)
    await wait_until(lambda: outbox_status(gw) == ["sent"], timeout=30)
    await asyncio.sleep(1.0)
    assert len(fake_twilio.messages) == 1


async def test_healthz_checks_redis(sqlite_url, make_gateway, start_client, redis_queue) -> None:
    client = await start_client(make_gateway(sqlite_url, redis_url=redis_queue[0], queue_name=redis_queue[1]),
                                background=False)
    body = await (await client.get("/healthz")).json()
    assert body["checks"] == {"database": "ok", "redis": "ok"}
    down = await start_client(make_gateway(sqlite_url, redis_url="redis://127.0.0.1:1/0"), background=False)
    resp = await down.get("/healthz")
    assert resp.status == 503 and (await resp.json())["checks"]["redis"].startswith("error")


def test_ids_gather_into_fuller_jobs_while_jobs_wait(sqlite_url, make_gateway, redis_queue,  # type: ignore[no-untyped-def]
                                                     monkeypatch) -> None:
    """Each RQ job costs a worker milliseconds of its own: while jobs already wait for a worker,
    the enqueue thread lingers longer, so ids notified apart travel in one job."""
    import time

    from gateway import queue as gq

    # Lingers far apart, so a loaded machine's scheduling cannot blur them.
    monkeypatch.setattr(gq, "ENQUEUE_LINGER", 0.01)
    monkeypatch.setattr(gq, "BUSY_LINGER", 1.5)
    gw = make_gateway(sqlite_url, redis_url=redis_queue[0], queue_name=redis_queue[1])
    backend = gq.RQBackend(redis_queue[0], redis_queue[1], gw.delivery)
    backend._thread.start()
    try:
        def jobs() -> list[tuple[int, ...]]:
            return [tuple(job.args) for job in backend.queue.get_jobs()]

        def notify_apart(first: int) -> None:
            backend.notify((first,))
            time.sleep(0.5)  # past the short linger, well within the long one
            backend.notify((first + 1,))

        notify_apart(1)  # idle workers (an empty queue): no waiting, two jobs
        deadline = time.monotonic() + 5
        while len(jobs()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert jobs() == [(1,), (2,)]
        notify_apart(3)  # now jobs wait: the two ids share one
        deadline = time.monotonic() + 5
        while len(jobs()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert jobs() == [(1,), (2,), (3, 4)]
    finally:
        backend._pending.put(None)
        backend._thread.join(5)
