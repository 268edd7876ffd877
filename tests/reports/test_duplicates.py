"""Probable duplicates: flagging at creation, the link API, status updates to the duplicate's citizen."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from conversations import reference as refs
from conversations.clock import FixedClock
from conversations import text_features
from conversations.complaints import change_status
from conversations.privacy import ERASED, erase_citizen
from conversations.duplicates import LinkError, link_duplicate
from conversations.text_features import similarity
from gateway.users import create_user
from store.models import Complaint
from tests.clocks.helpers import T0, complaint, events, new_complaint
from tests.conftest import wait_until

PASSWORD = "correct horse battery"
NO_WATER = "Pas d'eau au robinet depuis trois jours dans le quartier El Hamri à Oran"
NO_WATER_AGAIN = "Depuis trois jours pas d'eau au robinet, quartier El Hamri, Oran"


def test_similarity_scores() -> None:
    assert similarity(NO_WATER, NO_WATER_AGAIN) >= 0.5
    assert similarity("الماء مقطوع في حي النصر منذ ثلاثة أيام", "الماء مقطوع في حي النصر منذ يومين") >= 0.5
    assert similarity(NO_WATER, "Une fuite énorme devant l'école, la rue est inondée") < 0.5
    assert similarity("", NO_WATER) == 0.0


def test_flagged_only_when_same_category_place_open_and_recent(db_url: str, make_gateway: Any) -> None:
    clock = FixedClock(T0)
    gw = make_gateway(db_url, clock=clock)
    original = new_complaint(gw, text=NO_WATER, urn="tel:+212600000001")
    dup = new_complaint(gw, text=NO_WATER_AGAIN, urn="tel:+212600000002", at=T0 + timedelta(days=2))
    assert complaint(gw, dup).probable_duplicate_of_id == original
    [flag] = events(gw, dup, "probable_duplicate")
    assert flag.actor == "system" and flag.data["of_id"] == original and flag.data["score"] >= 0.5
    assert flag.data["of"] == complaint(gw, original).reference
    # Written with the complaint, after its creation and routing events.
    assert [e.type for e in events(gw, dup)] == ["created", "routed", "probable_duplicate"]
    assert flag.at == complaint(gw, dup).received_at
    unrelated = new_complaint(gw, text="Une fuite énorme devant l'école, la rue est inondée", at=T0 + timedelta(days=2))
    elsewhere = new_complaint(gw, text=NO_WATER_AGAIN, place="rabat", at=T0 + timedelta(days=2))
    other_category = new_complaint(gw, text=NO_WATER_AGAIN, category="electricity",
                                   administration="electricity_utility", at=T0 + timedelta(days=2))
    too_late = new_complaint(gw, text=NO_WATER_AGAIN, at=T0 + timedelta(days=32, minutes=1))
    for cid in (unrelated, elsewhere, other_category, too_late):
        assert complaint(gw, cid).probable_duplicate_of_id is None, cid
    with gw.db.session() as s:
        change_status(s, s.get(Complaint, original), "answered", actor="officer:1", now=T0 + timedelta(days=3))
        change_status(s, s.get(Complaint, dup), "answered", actor="officer:1", now=T0 + timedelta(days=3))
    after_close = new_complaint(gw, text=NO_WATER, at=T0 + timedelta(days=4))
    assert complaint(gw, after_close).probable_duplicate_of_id not in (original, dup)


def test_stored_features_follow_the_text(db_url: str, make_gateway: Any) -> None:
    """Written with the complaint, rewritten when the ORM changes its text (an edit, an erasure),
    and ignored, not trusted, when the text was changed by SQL."""
    gw = make_gateway(db_url, clock=FixedClock(T0))
    cid = new_complaint(gw, text=NO_WATER, urn="tel:+212600000001")
    assert text_features.sizes(complaint(gw, cid).text_features, NO_WATER) is not None
    with gw.db.session() as s:
        s.get(Complaint, cid).text = NO_WATER_AGAIN  # type: ignore[union-attr]
    assert text_features.sizes(complaint(gw, cid).text_features, NO_WATER_AGAIN) is not None
    with gw.db.session() as s:
        erase_citizen(s, "tel:+212600000001", now=T0, actor="user:dpo")
    erased = complaint(gw, cid)
    assert erased.text == ERASED and erased.text_features == text_features.encode(ERASED)

    leak = "Fuite d'eau énorme rue Larbi Ben M'hidi, la chaussée est inondée"
    stale = new_complaint(gw, text=NO_WATER, urn="tel:+212600000002", at=T0 + timedelta(hours=1))
    with gw.db.session() as s:
        s.execute(update(Complaint).where(Complaint.id == stale).values(text=leak))  # type: ignore[arg-type]
    assert text_features.sizes(complaint(gw, stale).text_features, leak) is None
    again = new_complaint(gw, text=leak + " !", urn="tel:+212600000003", at=T0 + timedelta(hours=2))
    assert complaint(gw, again).probable_duplicate_of_id == stale  # scored from its text
    not_water = new_complaint(gw, text=NO_WATER, urn="tel:+212600000004", at=T0 + timedelta(hours=3))
    assert complaint(gw, not_water).probable_duplicate_of_id is None


def test_link_rules(db_url: str, make_gateway: Any) -> None:
    gw = make_gateway(db_url, clock=FixedClock(T0))
    a, b, c = (new_complaint(gw, text=f"texte {i}", urn=f"tel:+21260000001{i}") for i in range(3))
    with gw.db.session() as s:
        ca, cb, cc = s.get(Complaint, a), s.get(Complaint, b), s.get(Complaint, c)
        assert link_duplicate(s, cb, ca, "user:w", T0) is True
        assert link_duplicate(s, cb, ca, "user:w", T0) is False
        assert link_duplicate(s, cc, cb, "user:w", T0) is True  # to a duplicate: goes to its original
        assert cc.duplicate_of_id == a
        with pytest.raises(LinkError):
            link_duplicate(s, ca, cc, "user:w", T0)  # would make a cycle: cc's root is ca itself
    assert [e.type for e in events(gw, a, "duplicate_linked")] == ["duplicate_linked", "duplicate_linked"]
    assert [e.data["of_id"] for e in events(gw, b, "linked_duplicate")] == [a]


async def test_link_api_and_status_updates_reach_the_duplicates_citizen(
        db_url: str, make_gateway: Any, start_client: Any, fake_twilio: Any) -> None:
    gw = make_gateway(db_url)
    now = gw.core.clock.now()
    original = new_complaint(gw, text=NO_WATER, urn="tel:+212600000001", at=now)
    dup = new_complaint(gw, text=NO_WATER_AGAIN, urn="tel:+212600000002", language="en", at=now)
    police = new_complaint(gw, text="Vol", category="security", administration="national_police", place=None, at=now)
    for name, role, admin in (("water", "officer", "water_utility"), ("police", "officer", "national_police"),
                              ("super", "supervisor", None), ("agent", "agent", None)):
        create_user(gw.db, name, role, PASSWORD, admin)
    client = await start_client(gw)
    tokens = {}
    for name in ("water", "police", "super", "agent"):
        resp = await client.post("/api/v1/auth/token", json={"username": name, "password": PASSWORD})
        tokens[name] = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    ref = {cid: refs.format_reference(complaint(gw, cid).reference) for cid in (original, dup, police)}

    async def link(who: str, reference: str, body: Any) -> Any:
        return await client.post(f"/api/v1/complaints/{reference}/link", json=body, headers=tokens[who])

    assert (await link("agent", ref[dup], {"original": ref[original]})).status == 403
    assert (await client.post(f"/api/v1/complaints/{ref[dup]}/link", json={"original": ref[original]})).status == 401
    assert (await link("police", ref[dup], {"original": ref[original]})).status == 404
    assert (await link("water", ref[dup], {"original": ref[police]})).status == 404
    assert (await link("water", ref[dup], {"original": refs.generate()})).status == 404
    resp = await link("water", ref[dup], {})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "original"
    resp = await link("water", ref[dup], {"original": ref[dup]})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "original"
    resp = await link("water", ref[dup].replace("-", ""), {"original": ref[original]})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"reference": ref[dup], "duplicate_of": ref[original], "linked": True,
                                 "probable_duplicate_of": ref[original]}
    assert (await (await link("super", ref[dup], {"duplicate_of": ref[original]})).json())["linked"] is False
    assert complaint(gw, dup).duplicate_of_id == original

    resp = await client.post(f"/api/v1/complaints/{ref[original]}/status", json={"status": "in_progress"},
                             headers=tokens["water"])
    assert resp.status == 200, await resp.text()
    await wait_until(lambda: fake_twilio.to("+212600000002") and fake_twilio.to("+212600000001"))
    [to_dup] = [m["body"] for m in fake_twilio.to("+212600000002")]
    assert ref[dup] in to_dup and "being handled by Water utility" in to_dup
    [to_original] = [m["body"] for m in fake_twilio.to("+212600000001")]
    assert ref[original] in to_original
    # the same status again sends nothing; the next one reaches both once more
    await client.post(f"/api/v1/complaints/{ref[original]}/status", json={"status": "in_progress"},
                      headers=tokens["water"])
    await client.post(f"/api/v1/complaints/{ref[original]}/status", json={"status": "answered", "note": "Réparé"},
                      headers=tokens["water"])
    await wait_until(lambda: len(fake_twilio.to("+212600000002")) == 2)
    assert "answered" in fake_twilio.to("+212600000002")[1]["body"]
    assert complaint(gw, dup).status == "assigned"  # the duplicate keeps its own status
