"""Calls and callback tasks for agents: ``GET /api/v1/calls``, ``GET /api/v1/callbacks``,
``POST /api/v1/callbacks/{id}/done``."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from conversations import calls
from gateway.auth import require
from gateway.http import GATEWAY, json_error

ROLES = ("agent", "supervisor", "admin")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json")


def _paging(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise ValueError("limit and offset must be whole numbers") from None
    if offset > 10_000_000:  # a huge offset overflowed the database driver (a 500)
        raise ValueError("offset must be at most 10000000")
    return limit, offset


async def list_calls(request: web.Request) -> web.StreamResponse:
    await require(request, *ROLES)
    gw = request.app[GATEWAY]
    try:
        limit, offset = _paging(request)

        def read() -> dict[str, Any]:
            with gw.db.session() as session:
                return calls.list_calls(session, limit=limit, offset=offset)
        return _json(await gw.db.run(read))
    except ValueError as exc:
        return json_error(400, "invalid_query", str(exc))


async def list_callbacks(request: web.Request) -> web.StreamResponse:
    await require(request, *ROLES)
    gw = request.app[GATEWAY]
    status = request.query.get("status", "open")
    try:
        limit, offset = _paging(request)

        def read() -> dict[str, Any]:
            with gw.db.session() as session:
                return calls.list_callbacks(session, status=None if status == "all" else status,
                                            limit=limit, offset=offset)
        return _json(await gw.db.run(read))
    except ValueError as exc:
        return json_error(400, "invalid_query", str(exc))


async def callback_done(request: web.Request) -> web.StreamResponse:
    user = await require(request, *ROLES)
    gw = request.app[GATEWAY]
    try:
        task_id = int(request.match_info["id"])
    except ValueError:
        return json_error(404, "not_found", "no such callback task")
    note = None
    if request.can_read_body:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return json_error(400, "invalid_json", "the body must be a JSON object")
        if not isinstance(body, dict) or not isinstance(body.get("note", ""), (str, type(None))):
            return json_error(400, "invalid_body", 'the body must be {"note": "..."} or empty')
        note = body.get("note")

    def write() -> dict[str, Any] | None:
        with gw.db.session() as session:
            task = calls.mark_callback_done(session, task_id, username=user.username, now=gw.core.clock.now(),
                                            note=note)
            return calls.callback_json(task) if task else None
    done = await gw.db.run(write)
    if done is None:
        return json_error(404, "not_found", "no such callback task")
    return _json(done)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/calls", list_calls)
    app.router.add_get("/api/v1/callbacks", list_callbacks)
    app.router.add_post("/api/v1/callbacks/{id}/done", callback_done)
