"""Open311 GeoReport v2 under ``/open311/v2/`` (``.json`` and ``.xml``).

Statuses: ``answered``, ``closed`` and ``rejected`` are ``closed``; the others ``open``.
Personal data never appears: no phone, email or names; the description and coordinates are
shown only for requests that came in through Open311 itself (another system published them);
a complaint from SMS, Telegram, email or the phone line shows its category, agency, place,
status and dates only. A POST without contact details creates an anonymous complaint.
"""
from __future__ import annotations

import hmac
import json
import re
import secrets
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from sqlmodel import select

from channels.base import MalformedPayload
from channels.sms.parse import tel_urn
from conversations import reference as refs
from conversations.intake import intake
from gateway.http import GATEWAY
from store.models import Complaint, KeyValue

CLOSED = ("answered", "closed", "rejected")
DEFAULT_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
FORMATS = ("json", "xml")
TOKEN_KEY = "open311:token:"
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{8,64}")


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


def _format(request: web.Request) -> str:
    fmt = request.match_info.get("format", "json")
    if fmt not in FORMATS:
        raise Open311Error(404, f"unknown format {fmt!r}; use .json or .xml")
    return fmt


def _xml(root: str, item: str, rows: list[dict[str, Any]]) -> str:
    top = ET.Element(root)
    for row in rows:
        _fill(ET.SubElement(top, item), row)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="unicode")


def _fill(element: ET.Element, row: dict[str, Any]) -> None:
    for key, value in row.items():
        child = ET.SubElement(element, key)
        if isinstance(value, bool):
            child.text = "true" if value else "false"
        elif value is not None:
            child.text = str(value)


def _respond(fmt: str, root: str, item: str, rows: list[dict[str, Any]], status: int = 200) -> web.Response:
    if fmt == "xml":
        return web.Response(text=_xml(root, item, rows), content_type="text/xml", charset="utf-8", status=status)
    return web.Response(text=json.dumps(rows, ensure_ascii=False), content_type="application/json", status=status)


def _error(fmt: str, status: int, description: str) -> web.Response:
    return _respond(fmt, "errors", "error", [{"code": status, "description": description}], status)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _language(request: web.Request, gw: Any) -> str:
    lang = request.query.get("locale", "")[:2] or gw.config.default_language
    return lang if lang in gw.config.templates else "en"


def _service(gw: Any, category: Any, lang: str) -> dict[str, Any]:
    return {"service_code": category.id, "service_name": category.name(lang), "description": category.description,
            "metadata": False, "type": "realtime", "keywords": category.id.replace("_", " "),
            "group": gw.config.administration_name(category.administration, lang)}


def request_json(gw: Any, c: Complaint, lang: str) -> dict[str, Any]:
    public = c.channel == "open311"
    category = gw.config.categories.get(c.category or "")
    place = gw.config.places.get(c.place or "")
    return {
        "service_request_id": refs.format_reference(c.reference),
        "status": "closed" if c.status in CLOSED else "open",
        "status_notes": c.rejected_reason if c.status == "rejected" and public else None,
        "service_name": category.name(lang) if category else None,
        "service_code": c.category,
        "description": c.text if public else None,
        "agency_responsible": gw.config.administration_name(c.administration, lang) or None,
        "service_notice": None,
        "requested_datetime": _iso(c.received_at),
        "updated_datetime": _iso(c.updated_at),
        "expected_datetime": _iso(c.answer_due_at),
        "address": (c.extra or {}).get("open311_address") if public else (place.names[0] if place else None),
        "address_id": None,
        "zipcode": None,
        "lat": c.latitude if public else None,
        "long": c.longitude if public else None,
        "media_url": None,  # attachments are never published
    }


async def _guard(request: web.Request, handler: Any) -> web.Response:
    fmt = request.match_info.get("format", "json")
    fmt = fmt if fmt in FORMATS else "json"
    try:
        return await handler(request, _format(request))
    except Open311Error as exc:
        return _error(fmt, exc.status, exc.description)


async def services(request: web.Request) -> web.Response:
    async def handle(request: web.Request, fmt: str) -> web.Response:
        gw = request.app[GATEWAY]
        lang = _language(request, gw)
        return _respond(fmt, "services", "service", [_service(gw, c, lang) for c in gw.config.categories.values()])
    return await _guard(request, handle)


async def service_definition(request: web.Request) -> web.Response:
    async def handle(request: web.Request, fmt: str) -> web.Response:
        gw = request.app[GATEWAY]
        code = request.match_info["code"]
        if code not in gw.config.categories:
            raise Open311Error(404, f"service_code {code!r} not found")
        definition = {"service_code": code, "attributes": []}
        if fmt == "xml":
            root = ET.Element("service_definition")
            ET.SubElement(root, "service_code").text = code
            ET.SubElement(root, "attributes")
            return web.Response(text='<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode"),
                                content_type="text/xml", charset="utf-8")
        return web.json_response(definition)
    return await _guard(request, handle)


def _parse_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Open311Error(400, f"{name} must be a W3C date-time such as 2026-06-01T00:00:00Z") from exc
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


async def list_requests(request: web.Request) -> web.Response:
    async def handle(request: web.Request, fmt: str) -> web.Response:
        gw = request.app[GATEWAY]
        lang = _language(request, gw)
        query = select(Complaint)
        ids = request.query.get("service_request_id")
        if ids:
            wanted = [refs.clean(i) for i in ids.split(",") if i.strip()][:MAX_RESULTS]
            query = query.where(Complaint.reference.in_(wanted))  # type: ignore[attr-defined]
        else:
            start, end = _parse_time(request, "start_date"), _parse_time(request, "end_date")
            now = gw.core.clock.now()
            if start is None and end is None:
                start = now - DEFAULT_WINDOW
            if start is not None and end is not None and end < start:
                raise Open311Error(400, "end_date must not be before start_date")
            if start is not None:
                query = query.where(Complaint.received_at >= start)
            if end is not None:
                query = query.where(Complaint.received_at <= end)
            codes = request.query.get("service_code")
            if codes:
                query = query.where(Complaint.category.in_(codes.split(",")))  # type: ignore[union-attr]
            status = request.query.get("status")
            if status:
                states = set(status.split(","))
                if not states <= {"open", "closed"}:
                    raise Open311Error(400, "status must be open or closed")
                if states == {"open"}:
                    query = query.where(Complaint.status.not_in(CLOSED))  # type: ignore[attr-defined]
                elif states == {"closed"}:
                    query = query.where(Complaint.status.in_(CLOSED))  # type: ignore[attr-defined]
        query = query.order_by(Complaint.received_at.desc()).limit(MAX_RESULTS)  # type: ignore[attr-defined]

        def work() -> list[dict[str, Any]]:
            with gw.db.session() as session:
                return [request_json(gw, c, lang) for c in session.exec(query).all()]

        return _respond(fmt, "service_requests", "request", await gw.db.run(work))
    return await _guard(request, handle)


async def one_request(request: web.Request) -> web.Response:
    async def handle(request: web.Request, fmt: str) -> web.Response:
        gw = request.app[GATEWAY]
        lang = _language(request, gw)
        digits = refs.clean(request.match_info["id"])

        def work() -> list[dict[str, Any]]:
            with gw.db.session() as session:
                c = session.exec(select(Complaint).where(Complaint.reference == digits)).first() if digits else None
                return [request_json(gw, c, lang)] if c else []

        rows = await gw.db.run(work)
        if not rows:
            raise Open311Error(404, "service_request_id not found")
        return _respond(fmt, "service_requests", "request", rows)
    return await _guard(request, handle)


async def token_lookup(request: web.Request) -> web.Response:
    async def handle(request: web.Request, fmt: str) -> web.Response:
        gw = request.app[GATEWAY]
        token = request.match_info["token"]

        def work() -> list[dict[str, Any]]:
            if not TOKEN_SHAPE.fullmatch(token):
                return []
            with gw.db.session() as session:
                row = session.get(KeyValue, TOKEN_KEY + token)
                c = session.get(Complaint, (row.value or {}).get("complaint_id")) if row else None
                if c is not None:
                    return [{"service_request_id": refs.format_reference(c.reference), "token": token}]
            return []

        rows = await gw.db.run(work)
        if not rows:
            raise Open311Error(404, "token not found")
        return _respond(fmt, "service_requests", "request", rows)
    return await _guard(request, handle)


async def create_request(request: web.Request) -> web.Response:
    async def handle(request: web.Request, fmt: str) -> web.Response:
        gw = request.app[GATEWAY]
        try:
            form = await request.post()
        except ValueError as exc:
            raise Open311Error(400, f"the body must be a form: {exc}") from exc
        data = {k: v for k, v in form.items() if isinstance(v, str)}
        expected = gw.settings.api_key_open311.get_secret_value() if gw.settings.api_key_open311 else ""
        given = data.get("api_key") or request.query.get("api_key", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Open311Error(403, "api_key is missing or not valid")
        code = data.get("service_code", "")
        if code not in gw.config.categories:
            raise Open311Error(400, "service_code is missing or unknown")
        description = data.get("description", "").strip()
        if not description:
            raise Open311Error(400, "description is required")
        if len(description) > gw.config.max_text_length:
            raise Open311Error(400, f"description is longer than {gw.config.max_text_length} characters")
        lat, lon = data.get("lat"), data.get("long")
        address = data.get("address_string", "").strip()[:500]
        try:
            latitude = float(lat) if lat else None
            longitude = float(lon) if lon else None
        except ValueError as exc:
            raise Open311Error(400, "lat and long must be numbers") from exc
        if (latitude is None) != (longitude is None) or (latitude is not None and not (
                -90 <= latitude <= 90 and -180 <= longitude <= 180)):  # type: ignore[operator]
            raise Open311Error(400, "give both lat and long, in degrees")
        if latitude is None and not address:
            raise Open311Error(400, "a location is required: lat and long, or address_string")
        urn = None
        if data.get("phone"):
            try:
                urn = tel_urn(data["phone"], gw.settings.country)
            except MalformedPayload as exc:
                raise Open311Error(400, f"phone: {exc}") from exc
        elif data.get("email"):
            if "@" not in data["email"] or len(data["email"]) > 254:
                raise Open311Error(400, "email is not an email address")
            urn = "mailto:" + data["email"].strip().lower()
        token = secrets.token_urlsafe(16)
        place = gw.core.router.route(f"{address} {description}").place if address else None

        def work() -> tuple[str, tuple[int, ...]]:
            with gw.db.session() as session:
                result = intake(gw.core, session, text=description, urn=urn, channel="open311", actor="open311",
                                category=code, place=place, consent_sms=True)
                c = result.complaint
                c.latitude, c.longitude = latitude, longitude
                c.extra = {**(c.extra or {}), "open311_address": address or None}
                session.add(c)
                session.add(KeyValue(key=TOKEN_KEY + token, value={"complaint_id": c.id}, updated_at=c.received_at))
                return refs.format_reference(c.reference), result.outbox_ids

        reference, outbox = await gw.db.run(work)
        gw.core.outbox_committed(outbox)
        return _respond(fmt, "service_requests", "request",
                        [{"service_request_id": reference, "token": token, "service_notice": None,
                          "account_id": None}], status=201)
    return await _guard(request, handle)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/open311/v2/services.{format}", services)
    r.add_get("/open311/v2/services/{code}.{format}", service_definition)
    r.add_get("/open311/v2/requests.{format}", list_requests)
    r.add_post("/open311/v2/requests.{format}", create_request)
    r.add_get("/open311/v2/requests/{id}.{format}", one_request)
    r.add_get("/open311/v2/tokens/{token}.{format}", token_lookup)
