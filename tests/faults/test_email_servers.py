"""The IMAP and SMTP servers going away and coming back while `gateway serve` reads the mailbox and
answers by mail: every mail is stored once, every new complaint gets one answer, nothing twice."""
from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store.models import Complaint, Message
from tests.channels.email.servers import PASSWORD, Dovecot, Mailbox, SmtpServer, find_dovecot
from tests.faults.harness import LEDGERS, DatabaseView, fault_env, missing_binary, start_serve, wait_async
from tests.support.processes import ROOT, free_port

MAILBOX = "reclamations@gateway.example.org"
COUNT = int(os.environ.get("GATEWAY_FAULT_EMAILS", "160"))


class RestartableDovecot(Dovecot):
    """A Dovecot of this test's own that can go away and come back with the same mail and port."""

    def pause(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def resume(self, timeout: float = 15.0) -> None:
        command = [self.binary, "-F", "-c", str(self.root / "dovecot.conf")]
        if os.geteuid() == 0:
            command = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not come back")


class ThreadedSmtp:
    """aiosmtpd on its own loop in a thread; it can stop listening and listen again on its port."""

    def __init__(self) -> None:
        self.server = SmtpServer()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._run(self.server.start())

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def stop_listening(self) -> None:
        self._run(self.server.stop())

    def listen_again(self) -> None:
        async def again() -> None:
            from aiosmtpd.smtp import SMTP

            loop = asyncio.get_running_loop()
            self.server.server = await loop.create_server(
                lambda: SMTP(self.server.sink, hostname="mx.test", loop=loop), "127.0.0.1", self.server.port)
        self._run(again())

    def close(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _mail(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Citoyen {i} <citoyen{i}@example.net>"
    msg["To"] = MAILBOX
    msg["Subject"] = "Coupure d'eau"
    msg["Message-ID"] = f"<fault-{i}@example.net>"
    msg.set_content(f"Bonjour, pas d'eau au robinet depuis trois jours dans notre quartier à Oran (n° {i}).")
    return msg.as_bytes()


@pytest.fixture
def dovecot_server():  # type: ignore[no-untyped-def]
    binary = find_dovecot()
    if binary is None:
        missing_binary("dovecot (apt-get install dovecot-imapd)")
    server = RestartableDovecot(binary)
    server.start()
    yield server
    server.stop()


async def test_imap_and_smtp_go_away_and_come_back(tmp_path: Path, processes, dovecot_server) -> None:
    smtp = ThreadedSmtp()
    user = dovecot_server.add_user()
    mailbox = Mailbox(dovecot_server.port, user)
    config = tmp_path / "email.toml"
    env = fault_env(tmp_path, "http://127.0.0.1:9", imap_host="127.0.0.1", imap_port=str(dovecot_server.port),
                    imap_user=user, imap_password=PASSWORD, imap_tls="false", email_address=MAILBOX,
                    smtp_host="127.0.0.1", smtp_port=str(smtp.server.port), smtp_tls="false")
    config.write_text(Path(env["GATEWAY_CONFIG"]).read_text()
                      + "\n[channels.email]\npoll_seconds = 0.5\ntimeout = 5\nrate_limit_per_hour = 0\n")
    env["GATEWAY_CONFIG"] = str(config)
    view = DatabaseView(f"sqlite:///{tmp_path / 'var' / 'gateway.sqlite3'}")
    port = free_port()
    try:
        start_serve(processes, env, port)
        half = COUNT // 2
        await mailbox.append(*(_mail(i) for i in range(half)))
        await wait_async(lambda: _stored(view) >= 5, 60, "the first mails to be read")
        await asyncio.to_thread(dovecot_server.pause)  # IMAP goes away mid-mailbox …
        stored_while_away = _stored(view)
        await asyncio.to_thread(smtp.stop_listening)  # … and so does SMTP
        await asyncio.sleep(3.0)
        await asyncio.to_thread(dovecot_server.resume)
        await mailbox.append(*(_mail(i) for i in range(half, COUNT)))
        await asyncio.sleep(3.0)  # answers pile up in the outbox while SMTP is still away
        await asyncio.to_thread(smtp.listen_again)
        await wait_async(lambda: _stored(view) >= COUNT and view.outbox_open() == 0
                         and len(smtp.server.sink.messages) >= COUNT, 90,
                         f"mail to be read and answered (stored {_stored(view)}, "
                         f"answered {len(smtp.server.sink.messages)}, outbox {view.outbox_statuses()})")
        await asyncio.sleep(1.5)
        with view.engine.connect() as conn:
            m = Message.__table__.c
            stored = collections.Counter(r[0] for r in conn.execute(select(m.provider_message_id).where(
                m.channel == "email", m.direction == "in")))
            complaints = conn.execute(select(func.count()).select_from(Complaint.__table__)).scalar_one()
        answered = collections.Counter(str(msg["To"]) for msg in smtp.server.sink.messages)
        duplicates = sum(n - 1 for n in answered.values() if n > 1)
        lost = sum(1 for i in range(COUNT) if answered[f"citoyen{i}@example.net"] == 0)
        line = (f"LEDGER IMAP (Dovecot) and SMTP away 3-6 s during the load (SQLite): sent={COUNT} "
                f"stored={sum(stored.values())} complaints={complaints} replies_delivered={sum(answered.values())} "
                f"duplicates={duplicates} lost={lost} | stored when IMAP went away={stored_while_away}")
        print(line)
        LEDGERS.append(line)
        assert len(stored) == COUNT and all(n == 1 for n in stored.values())
        assert complaints == COUNT and duplicates == 0 and lost == 0
        assert set(answered) == {f"citoyen{i}@example.net" for i in range(COUNT)}
    finally:
        view.close()
        smtp.close()


def _stored(view: DatabaseView) -> int:
    with view.engine.connect() as conn:
        m = Message.__table__.c
        return conn.execute(select(func.count()).select_from(Message.__table__).where(
            m.channel == "email", m.direction == "in")).scalar_one()
