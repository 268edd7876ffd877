"""``POST /api/v1/citizens/export`` and ``/erase`` (admin only): one citizen's personal data.

The phone number or address travels in the JSON body, never in the URL.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from conversations.privacy import delete_orphan_files, erase_citizen, export_citizen
from gateway.api import security
from gateway.api.common import ApiError, api, bool_field, client_ip, invalid, not_found, ok, read_json, text_field
from gateway.api.openapi import body, op, register
from gateway.auth import require
from gateway.citizens import citizen_urn
from gateway.http import GATEWAY


def _urn(request: web.Request, data: dict[str, Any]) -> str:
    phone = text_field(data, "phone", max_length=64)
    email = text_field(data, "email", max_length=320)
    if bool(phone) == bool(email):
        raise invalid("phone", "give either phone or email")
    try:
        return citizen_urn(phone, email, request.app[GATEWAY].settings.country)
    except ValueError as exc:
        raise invalid("phone" if phone else "email", str(exc)) from exc


@api
async def export(request: web.Request) -> web.StreamResponse:
    admin = await require(request, "admin")
    gw = request.app[GATEWAY]
    urn = _urn(request, await read_json(request))

    def work() -> dict[str, Any] | None:
        with gw.db.session() as session:
            data = export_citizen(session, urn)
            if data is not None:
                security.audit(session, "citizen_export", gw.core.clock.now(), username=admin.username,
                               ip=client_ip(request))
            return data

    data = await gw.db.run(work)
    if data is None:
        raise not_found("citizen")
    return ok(data)


@api
async def erase(request: web.Request) -> web.StreamResponse:
    admin = await require(request, "admin")
    gw = request.app[GATEWAY]
    data = await read_json(request)
    urn = _urn(request, data)
    if not bool_field(data, "confirm", False):
        raise ApiError(400, "invalid", "erasure cannot be undone; send \"confirm\": true", field="confirm")

    def work() -> dict[str, Any] | None:
        with gw.db.session() as session:
            erasure = erase_citizen(session, urn, now=gw.core.clock.now(), actor=f"user:{admin.username}")
            if erasure is not None:
                security.audit(session, "citizen_erase", gw.core.clock.now(), username=admin.username,
                               ip=client_ip(request))
        if erasure is None:
            return None
        removed = delete_orphan_files(gw.settings.data_dir, erasure.orphan_files)
        return {"erased": True, **erasure.as_dict(), "files_deleted": removed}

    result = await gw.db.run(work)
    if result is None:
        raise not_found("citizen")
    return ok(result)


_WHO = {"phone": {"type": "string"}, "email": {"type": "string"}}


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/citizens/export", export)
    app.router.add_post("/api/v1/citizens/erase", erase)
    register({
        "/api/v1/citizens/export": {"post": op(
            "Everything stored about one citizen, found by phone or email (in the body, never in the URL)",
            roles="admin", errs=(400, 401, 403, 404),
            request=body({"type": "object", "properties": _WHO}))},
        "/api/v1/citizens/erase": {"post": op(
            "Erase one citizen's personal data, keeping the statistics; needs \"confirm\": true",
            roles="admin", errs=(400, 401, 403, 404),
            request=body({"type": "object", "properties": {**_WHO, "confirm": {"type": "boolean"}}}))},
    })
