"""`gateway serve --processes N`: servers sharing one port, restarted when one dies, stopped together."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import psutil

from tests.channels.sms.test_sms_flow import sms
from tests.conftest import PUBLIC_URL, SMS_NUMBER, TWILIO_SID, TWILIO_TOKEN, twilio_signature, wait_until
from tests.support.processes import free_port, gateway_env

PATH = "/webhooks/twilio/sms"


async def _post_sms(session: aiohttp.ClientSession, base: str, number: str) -> int:
    form = sms("Pas d'eau au robinet depuis trois jours à Oran", sender=number)
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(PATH, form)}
    async with session.post(base + PATH, data=urlencode(form), headers=headers) as resp:
        return resp.status


def _servers(parent: psutil.Process) -> list[psutil.Process]:
    return [child for child in parent.children() if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]


def _serve_two(db_url: str, fake_twilio: Any, processes: Any, tmp_path: Path) -> tuple[Any, psutil.Process, int]:
    """``gateway serve --processes 2``: the process handle, the parent and the port."""
    port = free_port()
    env = gateway_env(database_url=db_url, public_url=PUBLIC_URL, twilio_account_sid=TWILIO_SID,
                      twilio_auth_token=TWILIO_TOKEN, twilio_api_base=fake_twilio.base_url, sms_number=SMS_NUMBER,
                      data_dir=str(tmp_path / "var"), scheduler_enabled="false")
    proc = processes("serve", "--port", str(port), "--processes", "2", env=env)
    return proc, psutil.Process(proc.proc.pid), port


async def _both_healthy(session: aiohttp.ClientSession, base: str, parent: psutil.Process) -> bool:
    try:
        async with session.get(base + "/healthz") as resp:
            return resp.status == 200 and len(_servers(parent)) == 2
    except aiohttp.ClientError:
        return False


async def test_processes_share_the_port_and_survive_a_crash(db_url, fake_twilio, processes, tmp_path: Path) -> None:
    proc, parent, port = _serve_two(db_url, fake_twilio, processes, tmp_path)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            return await _both_healthy(session, base, parent)

        await wait_until(healthy, timeout=60)
        numbers = [f"+2126{20_000_000 + i}" for i in range(30)]
        statuses = await asyncio.gather(*(_post_sms(session, base, n) for n in numbers[:20]))
        assert statuses == [200] * 20, proc.output()
        await wait_until(lambda: len(fake_twilio.messages) >= 20, timeout=30)

        victim = _servers(parent)[0]
        victim.kill()
        await wait_until(lambda: victim.pid not in [c.pid for c in _servers(parent)]
                         and len(_servers(parent)) == 2, timeout=30)
        await wait_until(healthy, timeout=60)
        statuses = await asyncio.gather(*(_post_sms(session, base, n) for n in numbers[20:]))
        assert statuses == [200] * 10, proc.output()
        await wait_until(lambda: len(fake_twilio.messages) >= 30, timeout=30)
    # Every acknowledged message got exactly one reply, whichever process took it.
    assert sorted(m["to"] for m in fake_twilio.messages) == sorted(numbers)
    assert "restarting it" in proc.output()

    servers = _servers(parent)
    proc.proc.send_signal(signal.SIGTERM)
    assert await asyncio.get_running_loop().run_in_executor(None, proc.proc.wait, 40) == 0
    assert not any(s.is_running() and s.status() != psutil.STATUS_ZOMBIE for s in servers)


async def test_connections_are_spread_over_the_processes(db_url, fake_twilio, processes, tmp_path: Path) -> None:
    """Each server has its own SO_REUSEPORT socket: long-lived keep-alive connections, as a
    provider holds them, do not all pile up on whichever process happened to accept first."""
    proc, parent, port = _serve_two(db_url, fake_twilio, processes, tmp_path)
    base = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=24, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        await wait_until(lambda: _both_healthy(session, base, parent), timeout=60)
        numbers = [f"+2126{30_000_000 + i}" for i in range(24)]
        statuses = await asyncio.gather(*(_post_sms(session, base, n) for n in numbers))
        assert statuses == [200] * 24, proc.output()
        held = {server.pid: sum(1 for c in server.net_connections(kind="tcp")
                                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)
                for server in _servers(parent)}
        # 24 connections hashed over two sockets all land on one with probability 2 ** -23.
        assert len(held) == 2 and all(count > 0 for count in held.values()), held
        await wait_until(lambda: len(fake_twilio.messages) >= 24, timeout=30)
    assert sorted(m["to"] for m in fake_twilio.messages) == sorted(numbers)
