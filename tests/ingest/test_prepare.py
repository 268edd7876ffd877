"""Routing and language detection run before an ingest's transaction: with SQLite that
transaction holds the write lock every server process waits for, so CPU spent inside it is
spent by all of them."""
from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any

from conversations.messages import InboundMessage
from store import db as store_db
from tests.ingest.test_group_commit import inbound


def spy_routing(gw: Any, monkeypatch: Any) -> list[tuple[str, bool]]:
    """(text, whether a transaction was open) for each text the router actually computed."""
    router = gw.core.router
    calls: list[tuple[str, bool]] = []

    def route(text: str, hint: str | None) -> Any:
        calls.append((text, bool(store_db._LOCK_HOLDERS)))
        return router._route(text, hint)

    monkeypatch.setattr(router, "_memo", functools.lru_cache(maxsize=1024)(route))
    return calls


async def test_a_new_complaint_is_routed_once_outside_the_transaction(sqlite_url, make_gateway,
                                                                       monkeypatch) -> None:
    gw = make_gateway(sqlite_url)
    calls = spy_routing(gw, monkeypatch)
    text = "Pas d'eau au robinet depuis trois jours à Oran"
    result = await gw.core.ingest(inbound(1, text=text))
    assert result.created_complaint
    assert calls == [(text, False)]  # the dialogue's own call found the answer


async def test_keywords_and_references_are_not_routed(sqlite_url, make_gateway, monkeypatch) -> None:
    gw = make_gateway(sqlite_url)
    first = await gw.core.ingest(inbound(1, text="Coupure d'électricité depuis ce matin à Oran"))
    calls = spy_routing(gw, monkeypatch)
    sender = "tel:+212610000001"
    for i, text in enumerate(["STATUS", "STOP", "START", f"statut {first.complaint_reference}"]):
        await gw.core.ingest(inbound(10 + i, sender=sender, text=text))
    assert calls == []
    forced = await gw.core.ingest(inbound(20, sender=sender, text="NOUVEAU Fuite d'eau rue Larbi Ben M'hidi"))
    assert forced.created_complaint
    assert calls == [("Fuite d'eau rue Larbi Ben M'hidi", False)]


def test_the_router_answers_a_text_from_memory(make_gateway, sqlite_url) -> None:
    router = make_gateway(sqlite_url).core.router
    text = "Les ordures ne sont pas ramassées depuis une semaine à Blida"
    assert router.route(text) is router.route(text, channel="sms")
    assert router.route(text, category_hint="water") is not router.route(text)


def test_telegram_text_is_routed_before_the_transaction(sqlite_url, make_gateway, monkeypatch) -> None:
    gw = make_gateway(sqlite_url)
    calls = spy_routing(gw, monkeypatch)

    def telegram(text: str, kind: str = "text") -> InboundMessage:
        return InboundMessage(channel="telegram", provider_message_id="1", sender="telegram:42",
                              service_address="bot", text=text, kind=kind,
                              received_at=datetime.now(timezone.utc))

    assert gw.core.prepare(telegram("Fuite d'eau devant l'école à Blida")) == "fr"
    gw.core.prepare(telegram("1498-8241-3"))  # a reference: its status is asked
    gw.core.prepare(telegram("   "))
    gw.core.prepare(telegram("start", kind="command"))
    assert calls == [("Fuite d'eau devant l'école à Blida", False)]


async def test_a_new_complaints_text_features_are_encoded_outside_the_transaction(sqlite_url, make_gateway,
                                                                                 monkeypatch) -> None:
    from conversations import text_features

    gw = make_gateway(sqlite_url)
    calls: list[tuple[str, bool]] = []
    real = text_features.encode

    def encode(text: str) -> bytes:
        calls.append((text, bool(store_db._LOCK_HOLDERS)))
        return real(text)

    monkeypatch.setattr(text_features, "encode", encode)
    text = "Les ordures ne sont pas ramassées depuis dix jours rue Didouche Mourad à Alger"
    result = await gw.core.ingest(inbound(1, text=text))
    assert result.created_complaint
    assert calls == [(text, False)]  # the complaint's statement took the bytes computed before it
    with gw.db.session() as s:
        from store.models import Complaint

        assert s.get(Complaint, result.complaint_id).text_features == real(text)
