"""Export of one citizen's data and its erasure (anonymised complaints keep the statistics),
through `gateway citizen export|erase`, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from conversations.privacy import ERASED, erase_citizen, export_citizen
from store.files import save_file
from store.models import Complaint, ComplaintEvent, Contact, Identity, Message, Outbox, StoredFile
from tests.channels.sms.test_sms_flow import CITIZEN, OTHER, replies, send
from tests.support.processes import ROOT, gateway_env

SECRET_TEXT = "Pas d'eau au robinet depuis trois jours, je suis Fatima au 12 rue des Lilas à Oran"


def cli(db_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "citizen", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=gateway_env(database_url=db_url, data_dir=str(data_dir)))


async def _two_citizens(gw: Any, client: Any, fake: Any, data_dir: Path) -> dict[str, Any]:
    await send(client, SECRET_TEXT)
    await send(client, "NOUVEAU Les ordures ne sont plus ramassées dans notre rue depuis une semaine")
    await send(client, "Panne d'électricité dans tout le quartier depuis ce matin", OTHER)
    await replies(fake, CITIZEN, 2)
    await replies(fake, OTHER, 1)
    with gw.db.session() as s:
        first = s.exec(select(Complaint).order_by(Complaint.id)).first()
        inbound = s.exec(select(Message).where(Message.complaint_id == first.id, Message.direction == "in")).first()
        save_file(s, data_dir, b"\x89PNG fake photo of the leak", content_type="image/png", filename="leak.png",
                  message_id=inbound.id, complaint_id=first.id)
        return {c.id: (c.category, c.administration, c.place, c.status, c.received_at, c.answer_due_at,
                       c.ack_due_at, c.channel, c.kind) for c in s.exec(select(Complaint))}


async def test_export_then_erase_keeps_statistics(db_url, make_gateway, start_client, fake_twilio,
                                                  tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    gw = make_gateway(db_url, data_dir=data_dir)
    client = await start_client(gw)
    stats_before = await _two_citizens(gw, client, fake_twilio, data_dir)

    exported = cli(db_url, data_dir, "export", "--phone", "0612345678")  # national format works
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert [i["urn"] for i in data["identities"]] == [f"tel:{CITIZEN}"]
    assert len(data["complaints"]) == 2 and SECRET_TEXT in [c["text"] for c in data["complaints"]]
    assert all(c["events"] for c in data["complaints"])
    assert {m["direction"] for m in data["messages"]} == {"in", "out"}
    assert [f["filename"] for f in data["files"]] == ["leak.png"]
    assert OTHER not in exported.stdout and "électricité" not in exported.stdout  # nobody else's data

    refused = cli(db_url, data_dir, "erase", "--phone", CITIZEN)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    erased = cli(db_url, data_dir, "erase", "--phone", CITIZEN, "--yes")
    assert erased.returncode == 0, erased.stderr
    report = json.loads(erased.stdout)
    assert report["complaints"] == 2 and report["identities"] == 1 and report["files"] == 1
    assert report["files_deleted"] == 1 and not list((data_dir / "files").rglob("*"))[1:]
    assert "612345678" not in erased.stderr

    with gw.db.session() as s:
        complaints = {c.id: c for c in s.exec(select(Complaint))}
        # the statistics are untouched
        assert {cid: (c.category, c.administration, c.place, c.status, c.received_at, c.answer_due_at,
                      c.ack_due_at, c.channel, c.kind) for cid, c in complaints.items()} == stats_before
        mine = [c for c in complaints.values() if c.text == ERASED]
        assert len(mine) == 2 and all(c.contact_id is None and c.identity_id is None for c in mine)
        other = [c for c in complaints.values() if c.text != ERASED]
        assert len(other) == 1 and "électricité" in other[0].text and other[0].contact_id is not None
        assert s.exec(select(Identity).where(Identity.urn == f"tel:{CITIZEN}")).first() is None
        assert s.exec(select(StoredFile)).all() == []
        for message in s.exec(select(Message).where(Message.complaint_id.in_([c.id for c in mine]))):
            assert message.text == "" and message.urn == "erased:" and message.raw == {}
        assert all("erased" in [e.type for e in s.exec(select(ComplaintEvent).where(
            ComplaintEvent.complaint_id == c.id))] for c in mine)
        tombstone = s.get(Contact, json.loads(exported.stdout)["contact"]["id"])
        assert tombstone.anonymised_at is not None and tombstone.display_name is None
        everything = json.dumps([m.model_dump(mode="json") for m in s.exec(select(Message))]
                                + [c.model_dump(mode="json") for c in mine]
                                + [e.model_dump(mode="json") for e in s.exec(select(ComplaintEvent))])
        assert "612345678" not in everything and "Fatima" not in everything and "Lilas" not in everything

    again = cli(db_url, data_dir, "export", "--phone", CITIZEN)
    assert again.returncode == 1  # nobody known any more
    # a new message from the same number starts afresh: a new contact, a new complaint, no follow-up
    await send(client, "Pas d'eau au robinet depuis ce matin dans notre rue à Oran")
    bodies = await replies(fake_twilio, CITIZEN, 3)
    assert "ajouté" not in bodies[-1]
    with gw.db.session() as s:
        identity = s.exec(select(Identity).where(Identity.urn == f"tel:{CITIZEN}")).one()
        assert identity.contact_id != tombstone.id
        assert s.exec(select(func.count()).select_from(Complaint)).one() == 4


async def test_erasure_cancels_pending_replies_and_keeps_provider_dedupe(db_url, make_gateway, start_client,
                                                                         fake_twilio, tmp_path: Path) -> None:
    gw = make_gateway(db_url, data_dir=tmp_path / "var")
    client = await start_client(gw, background=False)  # nothing is delivered: the reply stays pending
    await send(client, SECRET_TEXT, sid="SM" + "7" * 32)
    with gw.db.session() as s:
        erasure = erase_citizen(s, f"tel:{CITIZEN}", now=gw.core.clock.now(), actor="admin:test")
        assert erasure is not None and erasure.outbox_cancelled == 1
    with gw.db.session() as s:
        assert s.exec(select(Outbox.status)).all() == ["cancelled"]
        assert export_citizen(s, f"tel:{CITIZEN}") is None
    await send(client, SECRET_TEXT, sid="SM" + "7" * 32)  # Twilio retries the erased message
    with gw.db.session() as s:
        assert s.exec(select(func.count()).select_from(Message).where(Message.direction == "in")).one() == 1
        assert s.exec(select(Identity)).all() == []  # the retry did not bring the number back


def test_cli_rejects_bad_input(tmp_path: Path, sqlite_url: str) -> None:
    bad = cli(sqlite_url, tmp_path, "export", "--phone", "not a number")
    assert bad.returncode == 2 and "phone number" in bad.stderr
    unknown = cli(sqlite_url, tmp_path, "export", "--email", "Nobody@Example.org")
    assert unknown.returncode == 1


async def test_api_export_and_erase_are_admin_only_and_keep_numbers_out_of_urls(api_env) -> None:  # type: ignore[no-untyped-def]
    api = api_env
    ref = await api.intake(SECRET_TEXT, phone="0612345678")
    for who in ("agent", "officer", "supervisor", None):
        status, _ = await api.call(who, "POST", "/api/v1/citizens/export", {"phone": "0612345678"})
        assert status == (401 if who is None else 403), who
    status, data = await api.call("admin", "POST", "/api/v1/citizens/export", {"phone": "+212612345678"})
    assert status == 200 and data["complaints"][0]["text"] == SECRET_TEXT
    status, data = await api.call("admin", "POST", "/api/v1/citizens/erase", {"phone": "0612345678"})
    assert status == 400 and data["error"]["field"] == "confirm"
    status, data = await api.call("admin", "POST", "/api/v1/citizens/erase", {"phone": "0612345678", "confirm": True})
    assert status == 200 and data["erased"] and data["complaints"] == 1
    status, data = await api.call("supervisor", "GET", f"/api/v1/complaints/{ref}")
    assert status == 200 and data["text"] == ERASED and data["category"] == "water"
    assert "612345678" not in json.dumps(data)
    status, _ = await api.call("admin", "POST", "/api/v1/citizens/export", {"phone": "0612345678"})
    assert status == 404
    status, data = await api.call("admin", "POST", "/api/v1/citizens/export", {"phone": "1", "email": "a@b.org"})
    assert status == 400
