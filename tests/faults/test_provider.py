"""The provider answering 429/5xx or hanging for a while: backoff, no duplicate sends, no stuck worker."""
from __future__ import annotations

import asyncio
import collections
from pathlib import Path

from sqlmodel import select

import channels.sms.adapter as sms_adapter
from store.models import Outbox
from tests.channels.sms.test_sms_flow import CITIZEN, send
from tests.conftest import wait_until
from tests.faults.harness import LOAD, DatabaseView, SmsLoad, check_ledger, fault_env, settle, start_serve, wait_async
from tests.support.processes import free_port


async def test_provider_throttles_fails_and_hangs_during_load(tmp_path: Path, processes, provider) -> None:
    port = free_port()
    env = fault_env(tmp_path, provider.base_url)
    start_serve(processes, env, port)
    load = SmsLoad(f"http://127.0.0.1:{port}", LOAD, series=8)
    running = load.start()
    view = DatabaseView(f"sqlite:///{tmp_path / 'var' / 'gateway.sqlite3'}")
    try:
        for mode, fraction in (("429", 0.2), ("500", 0.4), ("hang", 0.6)):
            await load.wait_acked(int(LOAD * fraction))
            provider.set_mode(mode)
            await wait_async(lambda: provider.fake.refused[mode] > 0, 30, f"the provider to answer {mode}")
            await asyncio.sleep(3.0)
            provider.set_mode("ok")
        await running
        await settle(view, provider, load, timeout=90)
        attempts = collections.Counter(view_attempts(view))
        figures = check_ledger("provider 429 (Retry-After 1), then 500, then hanging, 3 s each (SQLite)", view,
                               load, provider, notes=f"refused {dict(provider.fake.refused)}, "
                                                     f"attempts per message {dict(sorted(attempts.items()))}")
        assert max(attempts) <= 6, "a message was retried in a tight loop"
        assert sum(provider.fake.refused.values()) < 3 * figures["sent"]
    finally:
        view.close()


def view_attempts(view: DatabaseView) -> list[int]:
    with view.engine.connect() as conn:
        return [row[0] for row in conn.execute(select(Outbox.__table__.c.attempts))]


async def test_timed_out_send_accepted_later_is_not_sent_twice(sqlite_url, make_gateway, start_client, fake_twilio,
                                                               monkeypatch) -> None:
    """A timeout is ambiguous: the provider may have accepted the message after we gave up. The
    retry first asks the provider (reconcile), so the citizen gets one acknowledgement."""
    monkeypatch.setattr(sms_adapter, "SEND_TIMEOUT", 0.5)
    fake_twilio.hang_next(1.5)
    gw = make_gateway(sqlite_url, delivery_lease_seconds=2)
    client = await start_client(gw)
    await send(client, "Pas d'eau au robinet depuis trois jours dans notre quartier à Oran")
    await wait_until(lambda: len(fake_twilio.messages) >= 1, timeout=15)

    def settled() -> bool:
        with gw.db.session() as s:
            return s.exec(select(Outbox.status)).all() == ["sent"]

    await wait_until(settled, timeout=20)
    await asyncio.sleep(1.0)
    assert len(fake_twilio.to(CITIZEN)) == 1, [m["body"] for m in fake_twilio.messages]


async def test_send_slower_than_its_lease_is_not_sent_twice(sqlite_url, make_gateway, start_client,
                                                            fake_twilio) -> None:
    """The provider answers after the delivery lease: a send may not outlive its lease (another
    claim would find nothing at the provider yet and send again). It is given up at 80% of the
    lease and the retry, a lease later, finds the message the provider accepted meanwhile."""
    fake_twilio.hang_next(2.5)
    gw = make_gateway(sqlite_url, delivery_lease_seconds=2)
    client = await start_client(gw)
    await send(client, "Pas d'eau au robinet depuis trois jours dans notre quartier à Oran")
    await wait_until(lambda: len(fake_twilio.messages) >= 1, timeout=15)

    def settled() -> bool:
        with gw.db.session() as s:
            return s.exec(select(Outbox.status)).all() == ["sent"]

    await wait_until(settled, timeout=20)
    await asyncio.sleep(2.5)
    assert len(fake_twilio.to(CITIZEN)) == 1, [m["body"] for m in fake_twilio.messages]
