"""SMS pumping and floods: limits on the automatic replies we send (conversations/ratelimit.py)."""
from __future__ import annotations

import asyncio
import re

import pytest
from sqlmodel import func, select

from config.loader import load_config
from config.settings import ConfigError
from conversations.ratelimit import ReplyLimits
from store.models import Complaint, Message
from tests.channels.sms.test_sms_flow import CITIZEN, send
from tests.conftest import wait_until


def _count(gw, *where) -> int:  # type: ignore[no-untyped-def]
    with gw.db.session() as s:
        return s.exec(select(func.count()).select_from(Message).where(*where)).one()


def _suppressed_metric(text: str, limit: str) -> float:
    match = re.search(r'gateway_replies_suppressed_total\{channel="sms",limit="%s"\} ([0-9.e+]+)' % limit, text)
    return float(match.group(1)) if match else 0.0


async def test_flood_from_random_numbers_sends_at_most_the_global_limit(db_url, make_gateway, start_client,
                                                                          fake_twilio) -> None:
    gw = make_gateway(db_url, config_overrides={"limits": {"global_replies_per_minute": 15}})
    client = await start_client(gw)
    before = _suppressed_metric(await (await client.get("/metrics")).text(), "global")
    numbers = [f"+2126{i:08d}" for i in range(40)]
    for batch in range(0, 40, 10):
        await asyncio.gather(*(send(client, "Pas d'eau au robinet depuis trois jours à Oran", n)
                               for n in numbers[batch:batch + 10]))
    await wait_until(lambda: len(fake_twilio.messages) >= 15)
    await asyncio.sleep(0.5)
    assert len(fake_twilio.messages) == 15
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(Complaint)).one() == 40  # every complaint exists
    assert _count(gw, Message.direction == "in") == 40
    assert _count(gw, Message.status == "suppressed", Message.error_code == "rate_limit_global") == 25
    after = _suppressed_metric(await (await client.get("/metrics")).text(), "global")
    assert after - before == 25


async def test_global_limit_above_the_margin_is_exact(db_url, make_gateway, start_client, fake_twilio) -> None:
    """Far below the limit the window is not counted for every reply (an upper bound from the
    largest message id stands in); the limit must still hold exactly."""
    limit = 45  # above ratelimit._NEAR, so the bound is used for the first replies
    gw = make_gateway(db_url, config_overrides={"limits": {"global_replies_per_minute": limit}})
    client = await start_client(gw)
    numbers = [f"+2126{i:08d}" for i in range(60)]
    for batch in range(0, 60, 10):
        await asyncio.gather(*(send(client, "Pas d'eau au robinet depuis trois jours à Oran", n)
                               for n in numbers[batch:batch + 10]))
    await wait_until(lambda: len(fake_twilio.messages) >= limit)
    await asyncio.sleep(0.5)
    assert len(fake_twilio.messages) == limit
    assert _count(gw, Message.status == "suppressed", Message.error_code == "rate_limit_global") == 60 - limit


async def test_one_sender_flooding_gets_at_most_the_sender_limit(db_url, make_gateway, start_client,
                                                                  fake_twilio) -> None:
    gw = make_gateway(db_url, config_overrides={"limits": {"sender_replies": 3, "sender_window_minutes": 10}})
    client = await start_client(gw)
    for i in range(8):
        await send(client, f"STATUS {i}")
    await send(client, "Pas d'eau au robinet depuis trois jours à Oran", "+212698765432")  # somebody else
    await wait_until(lambda: len(fake_twilio.messages) >= 4)
    await asyncio.sleep(0.5)
    assert len(fake_twilio.to(CITIZEN)) == 3 and len(fake_twilio.to("+212698765432")) == 1
    assert _count(gw, Message.direction == "in") == 9
    assert _count(gw, Message.status == "suppressed", Message.error_code == "rate_limit_sender") == 5


async def test_limit_holds_across_gateway_processes(db_url, make_gateway, start_client, fake_twilio) -> None:
    """Counted in the database, so two gateways sharing it share the limit."""
    limits = {"limits": {"global_replies_per_minute": 6}}
    clients = [await start_client(make_gateway(db_url, config_overrides=limits)) for _ in range(2)]
    for i in range(16):
        await send(clients[i % 2], "Pas d'eau au robinet depuis trois jours à Oran", f"+2126{i:08d}")
    await wait_until(lambda: len(fake_twilio.messages) >= 6)
    await asyncio.sleep(0.5)
    assert len(fake_twilio.messages) == 6


@pytest.mark.parametrize("table, field", [
    ({"sender_replies": -1}, "limits.sender_replies"),
    ({"global_replies_per_minute": "many"}, "limits.global_replies_per_minute"),
    ({"sender_window_minutes": 0}, "limits.sender_window_minutes"),
    ({"channels": "sms"}, "limits.channels"),
    ({"per_second": 3}, "unknown keys"),
])
def test_bad_limits_stop_start_up_naming_the_setting(table, field) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        ReplyLimits.from_config(load_config(overrides={"limits": table}))


def test_default_limits() -> None:
    limits = ReplyLimits.from_config(load_config())
    assert limits.channels == ("sms",) and limits.sender_replies >= 5 and limits.global_replies_per_minute >= 60
