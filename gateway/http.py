"""Small HTTP helpers shared by the route modules."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.context import Gateway

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


async def read_form(request: web.Request) -> dict[str, str]:
    """The urlencoded form as a plain dict of strings (uploaded files are not accepted here)."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        raise web.HTTPBadRequest(text=f"bad request: expected a form, got {request.content_type}\n")
    try:
        form = await request.post()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"bad request: {exc}\n") from exc
    return {key: value for key, value in form.items() if isinstance(value, str)}


def unavailable(exc: BaseException) -> web.Response:
    """The store is away: 503 with Retry-After so the provider retries; nothing was acknowledged."""
    return web.Response(status=503, text="temporarily unavailable, retry later\n", headers={"Retry-After": "5"})


def overloaded() -> web.Response:
    """More inbound messages wait for the database than a process holds: 503, retry in a moment."""
    return web.Response(status=503, text="overloaded, retry later\n", headers={"Retry-After": "2"})


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json")
