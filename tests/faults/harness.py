"""Fault-test machinery: a signed SMS load that retries like Twilio, a controllable fake Twilio in
its own thread, private Redis/PostgreSQL servers, and the ledger every scenario ends with.

The ledger is the point of these tests: every webhook that got a 2xx has exactly one stored
message, every new complaint exactly one acknowledgement delivered to the provider, nothing else.
"""
from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import create_engine, func, select
from twilio.request_validator import RequestValidator

from conversations import reference as refs
from store.models import Complaint, Identity, Message, Outbox
from tests.conftest import PUBLIC_URL, SMS_NUMBER, TWILIO_SID, TWILIO_TOKEN
from tests.support.db import IN_CI
from tests.support.fake_twilio import FakeTwilio
from tests.support.processes import free_port, gateway_env

# The size of each scenario's load (a few thousand in total over the suite; each scenario < ~60 s).
LOAD = int(os.environ.get("GATEWAY_FAULT_LOAD", "600"))
LEDGERS: list[str] = []
TEXT = "Pas d'eau au robinet depuis trois jours dans notre quartier à Oran, merci de faire vite"
WEBHOOK = "/webhooks/twilio/sms"
# High limits: these scenarios are about faults, not about SMS-pumping protection.
FAULT_CONFIG = """
[limits]
sender_replies = 1000
global_replies_per_minute = 1000000
"""


def fault_env(tmp_path: Path, fake_base: str, **values: Any) -> dict[str, str]:
    config = tmp_path / "gateway-faults.toml"
    config.write_text(FAULT_CONFIG)
    base: dict[str, Any] = dict(public_url=PUBLIC_URL, twilio_account_sid=TWILIO_SID, twilio_auth_token=TWILIO_TOKEN,
                                twilio_api_base=fake_base, sms_number=SMS_NUMBER, log_level="WARNING",
                                delivery_lease_seconds="3", config=str(config), data_dir=str(tmp_path / "var"))
    base.update(values)
    return gateway_env(**base)


def missing_binary(what: str) -> None:
    message = f"{what} is not installed"
    if IN_CI:
        pytest.fail(message + " — under CI=true a missing binary is a failure", pytrace=False)
    pytest.skip(message)


# -- the load ----------------------------------------------------------------------------------
@dataclass
class Webhook:
    sid: str
    number: str
    body: bytes
    signature: str
    attempts: int = 0
    acked: bool = False


@dataclass
class SmsLoad:
    """``count`` signed inbound SMS from distinct numbers; what is not acknowledged with a 2xx is
    retried with the same MessageSid until ``deadline`` (as Twilio does)."""

    base_url: str
    count: int
    series: int = 0
    concurrency: int = 24
    request_timeout: float = 10.0
    text: str = TEXT
    webhooks: list[Webhook] = field(default_factory=list)
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        validator = RequestValidator(TWILIO_TOKEN)
        for i in range(self.count):
            sid = f"SM{self.series:04d}{i:028d}"
            number = f"+2126{self.series:02d}{i:06d}"
            params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": TWILIO_SID, "From": number,
                      "To": SMS_NUMBER, "Body": self.text, "NumMedia": "0", "ApiVersion": "2010-04-01"}
            self.webhooks.append(Webhook(sid, number, urlencode(params).encode(),
                                         validator.compute_signature(PUBLIC_URL + WEBHOOK, params)))

    @property
    def acked(self) -> int:
        return sum(1 for w in self.webhooks if w.acked)

    @property
    def attempts(self) -> int:
        return sum(w.attempts for w in self.webhooks)

    async def run(self, deadline: float = 120.0) -> None:
        pending: asyncio.Queue[Webhook] = asyncio.Queue()
        for hook in self.webhooks:
            pending.put_nowait(hook)
        stop_at = time.monotonic() + deadline
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=False)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            async def worker() -> None:
                while time.monotonic() < stop_at:
                    try:
                        hook = pending.get_nowait()
                    except asyncio.QueueEmpty:
                        if self.acked == self.count:
                            return
                        await asyncio.sleep(0.05)
                        continue
                    if not await self._post(session, hook):
                        await asyncio.sleep(0.2)  # the provider's retry comes a little later
                        pending.put_nowait(hook)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        if self.acked != self.count:
            raise AssertionError(f"only {self.acked}/{self.count} webhooks acknowledged within {deadline}s "
                                 f"(answers: {dict(self.answers)})")

    async def _post(self, session: aiohttp.ClientSession, hook: Webhook) -> bool:
        hook.attempts += 1
        try:
            async with session.post(self.base_url + WEBHOOK, data=hook.body, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": hook.signature}) as resp:
                await resp.read()
                self.answers[str(resp.status)] += 1
                self.timeline.append((time.monotonic(), str(resp.status)))
                if 200 <= resp.status < 300:
                    hook.acked = True
                    return True
                if resp.status not in (502, 503, 504):
                    raise AssertionError(f"unexpected answer {resp.status} to a valid webhook")
                return False
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.answers[type(exc).__name__] += 1
            self.timeline.append((time.monotonic(), type(exc).__name__))
            return False

    def start(self, deadline: float = 120.0) -> "asyncio.Task[None]":
        return asyncio.create_task(self.run(deadline), name="sms-load")

    async def wait_acked(self, n: int, timeout: float = 60.0) -> None:
        stop_at = time.monotonic() + timeout
        while self.acked < n:
            if time.monotonic() > stop_at:
                raise AssertionError(f"only {self.acked} webhooks acknowledged, waited for {n}")
            await asyncio.sleep(0.05)


# -- the fake provider, outside the gateway and outside the test's event loop ----------------
class ControllableTwilio(FakeTwilio):
    """The fake Twilio with a switchable mode: ``ok``, ``429``, ``500`` or ``hang`` (requests wait
    until the mode changes, then are accepted)."""

    def __init__(self, account_sid: str) -> None:
        super().__init__(account_sid)
        self.mode = "ok"
        self.refused = collections.Counter[str]()

    async def create(self, request: web.Request) -> web.Response:
        mode = self.mode
        if mode == "429":
            self.refused["429"] += 1
            return web.json_response({"code": 20429, "message": "Too Many Requests", "status": 429},
                                     status=429, headers={"Retry-After": "1"})
        if mode == "500":
            self.refused["500"] += 1
            return web.json_response({"code": 20500, "message": "Internal error", "status": 500}, status=500)
        if mode == "hang":
            self.refused["hang"] += 1
            while self.mode == "hang":
                await asyncio.sleep(0.05)
        return await super().create(request)


class ThreadedFakeTwilio:
    """Runs :class:`ControllableTwilio` on its own event loop in a thread."""

    def __init__(self) -> None:
        self.fake = ControllableTwilio(TWILIO_SID)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-twilio", daemon=True)

    def start(self) -> "ThreadedFakeTwilio":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.fake.messages)

    def set_mode(self, mode: str) -> None:
        self.fake.mode = mode


# -- private services --------------------------------------------------------------------------
class PrivateRedis:
    """A throw-away ``redis-server`` on a free port, without persistence (a restart loses the queue)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_binary("redis-server")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        from redis import Redis

        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            wait_sync(lambda: _ping(client), 10, "private redis-server to start")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def _ping(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb into a temp dir, run as the ``postgres`` user)."""

    def __init__(self, directory: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            missing_binary("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/pg_ctl)")
        self.bin = bins[-1].parent
        self.directory = directory
        self.data = directory / "pgdata"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            directory.mkdir(parents=True, exist_ok=True)
            shutil.chown(directory, "postgres", "postgres")
            os.chmod(directory, 0o700)
            for parent in list(directory.parents)[:-1]:  # the postgres user must reach the directory
                os.chmod(parent, os.stat(parent).st_mode | 0o011)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run([*self.as_user, *args], check=True, timeout=timeout, capture_output=True)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.directory / "server.log"), "-w", "-t", "60", action, *extra)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001 — already stopped
            pass


def wait_sync(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    stop_at = time.monotonic() + timeout
    while time.monotonic() < stop_at:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_async(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    stop_at = time.monotonic() + timeout
    while time.monotonic() < stop_at:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_serve(processes: Any, env: dict[str, str], port: int) -> Any:
    proc = processes("serve", "--port", str(port), env=env)
    wait_sync(lambda: http_ok(f"http://127.0.0.1:{port}/healthz") or proc.proc.poll() is not None, 60,
              "gateway serve to answer /healthz")
    assert proc.proc.poll() is None, proc.output()
    return proc


def kill(proc: Any, sig: int = signal.SIGKILL) -> None:
    proc.kill(sig)


# -- the ledger --------------------------------------------------------------------------------
class DatabaseView:
    def __init__(self, url: str) -> None:
        from store.db import normalise_url

        self.engine = create_engine(normalise_url(url))

    def close(self) -> None:
        self.engine.dispose()

    def outbox_open(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Outbox.__table__).where(
                Outbox.__table__.c.status.in_(("pending", "sending")))).scalar_one()

    def outbox_statuses(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(Outbox.__table__.c.status, func.count()).group_by(
                Outbox.__table__.c.status)).all())

    def inbound_sids(self) -> collections.Counter[str]:
        m = Message.__table__.c
        with self.engine.connect() as conn:
            return collections.Counter(r[0] for r in conn.execute(select(m.provider_message_id).where(
                m.direction == "in")))

    def complaints(self) -> dict[str, str]:
        """Citizen number -> complaint reference."""
        c, i = Complaint.__table__.c, Identity.__table__.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(i.urn, c.reference).join_from(Complaint.__table__, Identity.__table__,
                                                                    c.identity_id == i.id)).all()
        found: dict[str, str] = {}
        for urn, reference in rows:
            number = urn.split(":", 1)[1]
            assert number not in found, f"two complaints for {number}"
            found[number] = reference
        return found

    def outbound_statuses(self) -> collections.Counter[str]:
        m = Message.__table__.c
        with self.engine.connect() as conn:
            return collections.Counter(r[0] for r in conn.execute(select(m.status).where(m.direction == "out")))


async def settle(view: DatabaseView, fake: ThreadedFakeTwilio, load: SmsLoad, timeout: float = 60.0) -> None:
    """Wait until delivery has caught up: no open outbox row and one reply per complaint at the provider."""
    def done() -> bool:
        return view.outbox_open() == 0 and len(fake.messages) >= len(view.complaints())

    await wait_async(done, timeout, f"delivery to catch up (outbox: {view.outbox_statuses()}, "
                                    f"provider: {len(fake.messages)})")
    await asyncio.sleep(1.5)  # a late duplicate would show up now


def check_ledger(scenario: str, view: DatabaseView, load: SmsLoad, fake: ThreadedFakeTwilio,
                 notes: str = "") -> dict[str, int]:
    """Assert the ledger and record it for the session summary."""
    sent = {w.sid: w for w in load.webhooks}
    stored = view.inbound_sids()
    complaints = view.complaints()
    delivered = collections.Counter(m["to"] for m in fake.messages)
    bodies = collections.defaultdict(list)
    for m in fake.messages:
        bodies[m["to"]].append(m["body"])
    acked = {sid for sid, w in sent.items() if w.acked}
    lost_in = sorted(sid for sid in acked if stored[sid] != 1)
    unexpected_in = sorted(sid for sid in stored if sid not in sent)
    lost_ack = sorted(n for n in complaints if delivered[n] == 0)
    duplicates = sum(n - 1 for n in delivered.values() if n > 1)
    strangers = sorted(n for n in delivered if n not in complaints)
    wrong = sorted(n for n, ref in complaints.items()
                   if delivered[n] == 1 and refs.format_reference(ref) not in bodies[n][0])
    figures = {
        "sent": len(sent), "attempts": load.attempts, "acknowledged": len(acked), "stored": sum(stored.values()),
        "complaints": len(complaints), "replies_delivered": sum(delivered.values()), "duplicates": duplicates,
        "lost": len(lost_in) + len(lost_ack),
    }
    line = (f"LEDGER {scenario}: " + " ".join(f"{k}={v}" for k, v in figures.items())
            + f" | answers {dict(sorted(load.answers.items()))}" + (f" | {notes}" if notes else ""))
    print(line)
    LEDGERS.append(line)
    assert not lost_in, f"acknowledged but not stored exactly once: {lost_in[:5]}"
    assert not unexpected_in, f"stored but never sent: {unexpected_in[:5]}"
    assert len(complaints) == len(stored) == len(acked) == len(sent), figures
    assert not lost_ack, f"complaints without an acknowledgement: {lost_ack[:5]}"
    assert duplicates == 0, {n: c for n, c in delivered.items() if c > 1}
    assert not strangers, f"messages to numbers that never wrote: {strangers[:5]}"
    assert not wrong, f"acknowledgements without the complaint's reference: {wrong[:5]}"
    assert view.outbound_statuses() == collections.Counter({"sent": len(complaints)}), view.outbound_statuses()
    return figures
