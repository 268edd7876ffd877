"""Open311 GeoReport v2: element names and values in XML, tokens, filters and privacy rules."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlmodel import select

from conversations.clock import FixedClock
from conversations.reference import format_reference, generate
from store.models import Complaint, Contact, Identity

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
KEY = "k-0123456789"
# From the GeoReport v2 specification (GET Service Requests / POST Service Request / GET id from token).
REQUEST_ELEMENTS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                    "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]
POST_ELEMENTS = {"service_request_id", "service_notice", "account_id", "token"}
SERVICE_ELEMENTS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]


def xml_of(text: str) -> ET.Element:
    head, _, body = text.partition("\n")
    assert head == '<?xml version="1.0" encoding="utf-8"?>'
    return ET.fromstring(body)


@pytest.fixture
async def o311(db_url: str, make_gateway: Any, start_client: Any) -> Any:
    gw = make_gateway(db_url, clock=FixedClock(NOW), api_key_open311=KEY)
    return gw, await start_client(gw, background=False)


def seed(gw: Any, **kw: Any) -> str:
    ref = generate()
    values = dict(reference=ref, status="assigned", channel="telegram", category="water",
                  administration="water_utility", place="oran", received_at=NOW - timedelta(days=1),
                  updated_at=NOW - timedelta(hours=2), answer_due_at=NOW + timedelta(days=59),
                  text="J'habite au 12 rue X, appelez-moi au 0612345678", latitude=35.7, longitude=-0.6)
    values.update(kw)
    with gw.db.session() as s:
        s.add(Complaint(**values))
    return format_reference(ref)


async def test_request_xml_element_by_element(o311: Any) -> None:
    gw, client = o311
    ref = seed(gw)
    resp = await client.get(f"/open311/v2/requests/{ref.replace('-', '')}.xml?locale=fr")
    assert resp.status == 200 and resp.content_type == "text/xml" and resp.charset == "utf-8"
    root = xml_of(await resp.text())
    assert root.tag == "service_requests" and [r.tag for r in root] == ["request"]
    request = root[0]
    assert [e.tag for e in request] == REQUEST_ELEMENTS
    value = {e.tag: e.text for e in request}
    assert value["service_request_id"] == ref and value["status"] == "open"
    assert value["service_code"] == "water" and value["service_name"] == "Eau et assainissement"
    assert value["agency_responsible"] == "Régie de distribution d'eau"
    assert value["requested_datetime"] == "2026-06-29T12:00:00Z"
    assert value["updated_datetime"] == "2026-06-30T10:00:00Z"
    assert value["expected_datetime"] == "2026-08-28T12:00:00Z"
    assert value["address"] == "Oran"
    # a citizen's own words and exact position are personal data: not published
    for name in ("description", "lat", "long", "status_notes", "media_url", "address_id", "zipcode"):
        assert value[name] is None, name
    assert "0612345678" not in await resp.text() and "rue X" not in await resp.text()


async def test_statuses_map_to_open_and_closed(o311: Any) -> None:
    gw, client = o311
    refs = {status: seed(gw, status=status) for status in ("new", "assigned", "in_progress", "answered", "closed")}
    refs["rejected"] = seed(gw, status="rejected", rejected_reason="Hors compétence, voir M. Untel 0611111111")
    rows = {r["service_request_id"]: r for r in await (await client.get("/open311/v2/requests.json")).json()}
    for status, ref in refs.items():
        assert rows[ref]["status"] == ("closed" if status in ("answered", "closed", "rejected") else "open")
    assert rows[refs["rejected"]]["status_notes"] is None  # an officer's words about a citizen stay inside
    xml = xml_of(await (await client.get("/open311/v2/requests.xml?status=open,closed")).text())
    assert len(xml) == 6


async def test_window_filters_and_limits(o311: Any) -> None:
    gw, client = o311
    recent = seed(gw, received_at=NOW - timedelta(days=89))
    old = seed(gw, received_at=NOW - timedelta(days=91))
    default = {r["service_request_id"] for r in await (await client.get("/open311/v2/requests.json")).json()}
    assert recent in default and old not in default
    explicit = await (await client.get("/open311/v2/requests.json?start_date=2026-03-31T00:00:00%2B00:00"
                                       "&end_date=2026-04-01T00:00:00Z")).json()
    assert [r["service_request_id"] for r in explicit] == [old]
    assert (await client.get("/open311/v2/requests.json?start_date=2026-06-01T00:00:00Z"
                             "&end_date=2026-05-01T00:00:00Z")).status == 400
    bad_status = await client.get("/open311/v2/requests.xml?status=pending")
    assert bad_status.status == 400 and xml_of(await bad_status.text())[0].find("code").text == "400"
    # service_request_id overrides the other filters
    assert [r["service_request_id"] for r in await (await client.get(
        f"/open311/v2/requests.json?service_request_id={old}&status=closed")).json()] == [old]


async def test_post_form_xml_token_and_anonymity(o311: Any) -> None:
    gw, client = o311
    form = {"service_code": "roads", "description": "Il n'y a plus d'eau et la route est inondée près du pont",
            "address_string": "Boulevard de l'ALN, Oran", "first_name": "Amina", "last_name": "B.",
            "attribute[kind]": "complaint", "jurisdiction_id": "dz"}
    resp = await client.post(f"/open311/v2/requests.xml?api_key={KEY}", data=form)
    assert resp.status == 201, await resp.text()
    answer = xml_of(await resp.text())
    assert answer.tag == "service_requests" and [r.tag for r in answer] == ["request"]
    assert {e.tag for e in answer[0]} <= POST_ELEMENTS and answer[0].find("service_request_id").text
    ref, token = answer[0].find("service_request_id").text, answer[0].find("token").text
    tok = xml_of(await (await client.get(f"/open311/v2/tokens/{token}.xml")).text())
    assert tok.tag == "service_requests" and [e.tag for e in tok[0]] == ["service_request_id", "token"]
    assert tok[0].find("service_request_id").text == ref
    assert (await client.get("/open311/v2/tokens/not-a-known-token.json")).status == 404
    [row] = await (await client.get(f"/open311/v2/requests/{ref}.json")).json()
    assert row["service_code"] == "roads"  # the submitter's service, not the router's guess
    assert row["description"] == form["description"] and row["address"] == form["address_string"]
    assert "Amina" not in json.dumps(row)
    with gw.db.session() as s:
        complaint = s.exec(select(Complaint)).one()
        assert complaint.anonymous and complaint.identity_id is None and complaint.channel == "open311"
        assert s.exec(select(Contact)).all() == [] and s.exec(select(Identity)).all() == []
        assert "Amina" not in json.dumps(complaint.extra)


async def test_api_key_is_required_and_compared(o311: Any, make_gateway: Any, sqlite_url: str,
                                                start_client: Any) -> None:
    gw, client = o311
    form = {"service_code": "water", "description": "fuite", "lat": "35.7", "long": "-0.6"}
    resp = await client.post("/open311/v2/requests.xml", data={**form, "api_key": KEY + "x"})
    assert resp.status == 403 and xml_of(await resp.text())[0].find("code").text == "403"
    unconfigured = await start_client(make_gateway(sqlite_url, clock=FixedClock(NOW)), background=False)
    assert (await unconfigured.post("/open311/v2/requests.json", data={**form, "api_key": ""})).status == 403
