"""Open311 GeoReport v2, both formats, field by field against the specification."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlmodel import select

from conversations.clock import FixedClock
from conversations.reference import format_reference, generate
from store.models import Complaint, Identity
from tests.channels.sms.test_sms_flow import send

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
API_KEY = "open311-test-key"
# GeoReport v2: the fields of a service, of a service request, of a POST answer, of a token answer.
SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"}
POST_FIELDS = {"service_request_id", "service_notice", "account_id"}
TOKEN_FIELDS = {"service_request_id", "token"}


@pytest.fixture
async def o311(db_url: str, make_gateway: Any, start_client: Any) -> Any:
    gw = make_gateway(db_url, clock=FixedClock(NOW), api_key_open311=API_KEY)
    client = await start_client(gw)
    return gw, client


def seed(gw: Any, status: str, received: datetime, channel: str = "sms", category: str = "water") -> str:
    ref = generate()
    with gw.db.session() as s:
        s.add(Complaint(reference=ref, status=status, channel=channel, category=category,
                        administration="water_utility", place="oran", received_at=received, updated_at=received,
                        answer_due_at=received + timedelta(days=60), text="Mon numéro est 0612345678, pas d'eau"))
    return format_reference(ref)


async def test_services_json_and_xml(o311: Any) -> None:
    gw, client = o311
    resp = await client.get("/open311/v2/services.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    services = await resp.json()
    assert {s["service_code"] for s in services} == set(gw.config.categories)
    for service in services:
        assert set(service) == SERVICE_FIELDS
        assert service["metadata"] is False and service["type"] in ("realtime", "batch", "blackbox")
    water = next(s for s in services if s["service_code"] == "water")
    assert water["group"] and water["service_name"]
    xml = await (await client.get("/open311/v2/services.xml")).text()
    assert xml.startswith('<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(xml.split("\n", 1)[1])
    assert root.tag == "services" and all(child.tag == "service" for child in root)
    assert len(root) == len(services)
    first = root[0]
    assert {c.tag for c in first} == SERVICE_FIELDS and first.find("metadata").text == "false"
    definition = await (await client.get("/open311/v2/services/water.json")).json()
    assert definition == {"service_code": "water", "attributes": []}
    xdef = ET.fromstring((await (await client.get("/open311/v2/services/water.xml")).text()).split("\n", 1)[1])
    assert xdef.tag == "service_definition" and xdef.find("service_code").text == "water"
    missing = await client.get("/open311/v2/services/unicorns.json")
    assert missing.status == 404 and set((await missing.json())[0]) == {"code", "description"}


async def test_get_requests_filters_status_mapping_and_privacy(o311: Any) -> None:
    gw, client = o311
    open_ref = seed(gw, "in_progress", NOW - timedelta(days=3))
    closed_ref = seed(gw, "answered", NOW - timedelta(days=5))
    rejected_ref = seed(gw, "rejected", NOW - timedelta(days=6), category="roads")
    seed(gw, "new", NOW - timedelta(days=200))  # outside the default 90-day window
    rows = await (await client.get("/open311/v2/requests.json")).json()
    assert {r["service_request_id"] for r in rows} == {open_ref, closed_ref, rejected_ref}
    by_id = {r["service_request_id"]: r for r in rows}
    assert by_id[open_ref]["status"] == "open"
    assert by_id[closed_ref]["status"] == "closed" and by_id[rejected_ref]["status"] == "closed"
    for row in rows:
        assert set(row) == REQUEST_FIELDS
        assert row["description"] is None and row["lat"] is None  # an SMS complaint is not published
        assert "0612345678" not in json.dumps(row)
    row = by_id[open_ref]
    assert row["service_code"] == "water" and row["agency_responsible"] and row["address"] == "Oran"
    assert row["requested_datetime"] == (NOW - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    assert row["expected_datetime"].endswith("Z")
    only_closed = await (await client.get("/open311/v2/requests.json?status=closed")).json()
    assert {r["service_request_id"] for r in only_closed} == {closed_ref, rejected_ref}
    only_roads = await (await client.get("/open311/v2/requests.json?service_code=roads")).json()
    assert [r["service_request_id"] for r in only_roads] == [rejected_ref]
    ranged = await (await client.get("/open311/v2/requests.json?start_date=2025-01-01T00:00:00Z"
                                     "&end_date=2026-01-01T00:00:00Z")).json()
    assert len(ranged) == 1
    by_ids = await (await client.get(f"/open311/v2/requests.json?service_request_id={open_ref},{closed_ref}")).json()
    assert {r["service_request_id"] for r in by_ids} == {open_ref, closed_ref}
    one = await client.get(f"/open311/v2/requests/{open_ref}.json")
    assert one.status == 200 and [r["service_request_id"] for r in await one.json()] == [open_ref]
    xml = ET.fromstring((await (await client.get("/open311/v2/requests.xml")).text()).split("\n", 1)[1])
    assert xml.tag == "service_requests" and all(r.tag == "request" for r in xml) and len(xml) == 3
    assert {c.tag for c in xml[0]} == REQUEST_FIELDS
    bad = await client.get("/open311/v2/requests.json?start_date=yesterday")
    assert bad.status == 400 and (await bad.json())[0]["code"] == 400
    assert (await client.get("/open311/v2/requests/1234-5678-0.json")).status == 404
    xml_err = await client.get("/open311/v2/requests/1234-5678-0.xml")
    err = ET.fromstring((await xml_err.text()).split("\n", 1)[1])
    assert xml_err.status == 404 and err.tag == "errors" and err[0].tag == "error"
    assert err[0].find("code").text == "404" and err[0].find("description").text
    assert (await client.get("/open311/v2/services.yaml")).status == 404


async def test_post_request_anonymous_and_token(o311: Any, fake_twilio: Any) -> None:
    gw, client = o311
    form = {"api_key": API_KEY, "service_code": "roads", "description": "Nid-de-poule dangereux devant l'école",
            "lat": "35.6971", "long": "-0.6308"}
    resp = await client.post("/open311/v2/requests.json", data=form)
    assert resp.status == 201, await resp.text()
    [answer] = await resp.json()
    assert POST_FIELDS <= set(answer) and answer["service_request_id"]
    token = answer["token"]
    tok = await (await client.get(f"/open311/v2/tokens/{token}.json")).json()
    assert tok == [{"service_request_id": answer["service_request_id"], "token": token}]
    assert set(tok[0]) == TOKEN_FIELDS
    [published] = await (await client.get(f"/open311/v2/requests/{answer['service_request_id']}.json")).json()
    assert published["description"] == form["description"] and published["lat"] == 35.6971
    assert published["service_code"] == "roads" and published["status"] == "open"
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert complaint.anonymous and complaint.contact_id is None and complaint.channel == "open311"
        assert s.exec(select(Identity)).all() == []
    xml = await client.post("/open311/v2/requests.xml", data={**form, "address_string": "Rue Larbi Ben M'hidi, Oran",
                                                               "lat": "", "long": "", "phone": "0612345678"})
    assert xml.status == 201
    root = ET.fromstring((await xml.text()).split("\n", 1)[1])
    assert root.tag == "service_requests" and root[0].find("service_request_id").text
    await_ref = root[0].find("service_request_id").text
    [row] = await (await client.get(f"/open311/v2/requests/{await_ref}.json")).json()
    assert "0612345678" not in json.dumps(row) and row["address"] == "Rue Larbi Ben M'hidi, Oran"


async def test_post_errors(o311: Any) -> None:
    gw, client = o311
    base = {"api_key": API_KEY, "service_code": "water", "description": "fuite", "lat": "1", "long": "2"}
    cases = [({**base, "api_key": "wrong"}, 403), ({k: v for k, v in base.items() if k != "api_key"}, 403),
             ({**base, "service_code": "nope"}, 400), ({**base, "description": ""}, 400),
             ({**base, "lat": "north"}, 400), ({**base, "lat": "", "long": ""}, 400),
             ({**base, "phone": "12"}, 400)]
    for form, status in cases:
        resp = await client.post("/open311/v2/requests.json", data=form)
        assert resp.status == status, (form, await resp.text())
        body = await resp.json()
        assert isinstance(body, list) and body[0]["code"] == status and body[0]["description"]
    with gw.db.session() as s:
        assert s.exec(select(Complaint)).all() == []


async def test_citizen_complaint_appears_without_personal_data(o311: Any, fake_twilio: Any) -> None:
    gw, client = o311
    await send(client, "Bonjour, pas d'eau au robinet depuis trois jours à Oran, mon numéro 0612345678")
    rows = await (await client.get("/open311/v2/requests.json")).json()
    assert len(rows) == 1 and rows[0]["service_code"] == "water" and rows[0]["description"] is None
    assert "612345678" not in json.dumps(rows)
