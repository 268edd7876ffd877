"""Webhook authentication: forged, missing, replayed-with-a-changed-body, wrong host or port, and a
request reaching us through a proxy (the check uses GATEWAY_PUBLIC_URL, never the Host header)."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlmodel import func, select

from store.models import Message
from tests.channels.sms.test_sms_flow import sms
from tests.conftest import PUBLIC_URL, post_signed, twilio_signature
from tests.support.ivr import call_params, new_sid
from tests.support.telegram_updates import SECRET, fresh, post_update

SMS = "/webhooks/twilio/sms"
STATUS = "/webhooks/twilio/sms/status"
VOICE = "/webhooks/twilio/voice"


def _stored(gw) -> int:  # type: ignore[no-untyped-def]
    with gw.db.session() as s:
        return s.exec(select(func.count()).select_from(Message)).one()


async def _post_raw(client, path: str, params: dict[str, str], signature: str | None, **headers: str):  # type: ignore[no-untyped-def]
    sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    if signature is not None:
        sent["X-Twilio-Signature"] = signature
    return await client.post(path, data=urlencode(params), headers=sent)


def _forgeries(path: str, params: dict[str, str], changed_key: str) -> dict[str, tuple[dict[str, str], str | None]]:
    changed = {**params, changed_key: params[changed_key] + "0"}
    return {
        "missing": (params, None),
        "empty": (params, ""),
        "wrong token": (params, twilio_signature(path, params, token="not-the-auth-token")),
        "replayed, body changed": (changed, twilio_signature(path, params)),
        "replayed, field added": ({**params, "Extra": "1"}, twilio_signature(path, params)),
        "replayed, field removed": ({k: v for k, v in params.items() if k != changed_key},
                                    twilio_signature(path, params)),
        "wrong host": (params, twilio_signature(path, params, base="https://evil.example.org")),
        "wrong port": (params, twilio_signature(path, params, base=PUBLIC_URL + ":8443")),
        "wrong scheme": (params, twilio_signature(path, params, base=PUBLIC_URL.replace("https", "http"))),
        "another path": (params, twilio_signature("/webhooks/twilio/voice", params)),
        "garbage": (params, "AAAA" * 7),
    }


@pytest.mark.parametrize("case", list(_forgeries(SMS, sms("x"), "Body")))
async def test_forged_sms_webhooks_are_refused_and_store_nothing(case, sqlite_url, make_gateway,
                                                                 start_client) -> None:
    gw = make_gateway(sqlite_url)
    client = await start_client(gw, background=False)
    params, signature = _forgeries(SMS, sms("Pas d'eau depuis trois jours"), "Body")[case]
    resp = await _post_raw(client, SMS, params, signature)
    assert resp.status == 403, await resp.text()
    assert "forbidden" in await resp.text()
    assert _stored(gw) == 0


@pytest.mark.parametrize("case", ["missing", "wrong token", "replayed, body changed", "wrong host"])
async def test_forged_status_callbacks_are_refused(case, sqlite_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(sqlite_url), background=False)
    params = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered", "AccountSid": "AC" + "1" * 32}
    params, signature = _forgeries(STATUS, params, "MessageStatus")[case]
    assert (await _post_raw(client, STATUS, params, signature)).status == 403


@pytest.mark.parametrize("case", ["missing", "wrong token", "replayed, body changed", "wrong host", "wrong port"])
async def test_forged_voice_webhooks_are_refused(case, sqlite_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(sqlite_url), background=False)
    params = call_params("incoming_call", new_sid("CA"))
    params, signature = _forgeries(VOICE, params, "From")[case]
    resp = await _post_raw(client, VOICE, params, signature)
    assert resp.status == 403, await resp.text()


async def test_signature_is_checked_against_the_public_url_not_the_host_header(sqlite_url, make_gateway,
                                                                               start_client) -> None:
    """Behind a proxy the request arrives for another host and port; Twilio signed the public URL."""
    gw = make_gateway(sqlite_url)
    client = await start_client(gw, background=False)
    params = sms("Pas d'eau depuis trois jours à Oran")
    proxied = await _post_raw(client, SMS, params, twilio_signature(SMS, params), Host="10.0.0.7:8080",
                              **{"X-Forwarded-Host": "evil.example.org", "X-Forwarded-Proto": "http",
                                 "X-Forwarded-For": "203.0.113.9"})
    assert proxied.status == 200, await proxied.text()
    # signing what the Host header says (as a naive check would) is refused
    local = f"http://{client.host}:{client.port}"
    params = sms("Pas d'eau depuis trois jours à Oran")
    assert (await _post_raw(client, SMS, params, twilio_signature(SMS, params, base=local))).status == 403
    forwarded = sms("Pas d'eau depuis trois jours à Oran")
    assert (await _post_raw(client, SMS, forwarded, twilio_signature(SMS, forwarded, base="https://evil.example.org"),
                            **{"X-Forwarded-Host": "evil.example.org"})).status == 403
    assert _stored(gw) == 2  # the accepted message and its acknowledgement


async def test_query_string_is_part_of_the_signed_url(sqlite_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(sqlite_url), background=False)
    params = sms("Pas d'eau depuis trois jours à Oran")
    assert (await _post_raw(client, SMS + "?tenant=1", params, twilio_signature(SMS + "?tenant=1", params))).status == 200
    params = sms("Pas d'eau depuis trois jours à Oran")
    assert (await _post_raw(client, SMS + "?tenant=2", params, twilio_signature(SMS + "?tenant=1", params))).status == 403


async def test_genuine_retry_is_accepted_once(sqlite_url, make_gateway, start_client) -> None:
    gw = make_gateway(sqlite_url)
    client = await start_client(gw, background=False)
    params = sms("Pas d'eau depuis trois jours à Oran")
    for _ in range(3):
        assert (await post_signed(client, SMS, params)).status == 200
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(Message).where(Message.direction == "in")).one() == 1


@pytest.mark.parametrize("secret, status", [(None, 403), ("", 403), ("wrong", 403), (SECRET.upper(), 403),
                                            (SECRET[:-1], 403), (SECRET + "x", 403), (SECRET, 200)])
async def test_telegram_secret_token(secret, status, sqlite_url, make_tg, start_client) -> None:
    client = await start_client(make_tg(sqlite_url), background=False)
    resp = await post_update(client, fresh("private_text"), secret=secret)
    assert resp.status == status, await resp.text()


@pytest.mark.parametrize("base", [PUBLIC_URL, PUBLIC_URL + ":443"])
async def test_the_signed_url_with_or_without_its_default_port_is_accepted(base, sqlite_url, make_gateway,
                                                                          start_client) -> None:
    """One HMAC over GATEWAY_PUBLIC_URL settles the usual case; Twilio's validator still accepts
    the same URL signed with its default port (Twilio's own signatures vary on this)."""
    gw = make_gateway(sqlite_url)
    client = await start_client(gw, background=False)
    params = sms("Pas d'eau depuis trois jours")
    resp = await _post_raw(client, SMS, params, twilio_signature(SMS, params, base=base))
    assert resp.status == 200, await resp.text()
    assert _stored(gw) >= 1
