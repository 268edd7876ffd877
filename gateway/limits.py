"""Input limits shared by every route: a body over ``client_max_size`` (counted after any
Content-Encoding is undone, so a compressed bomb is caught too) is answered 413 with a clear
message, and NUL characters in the URL 400 (JSON bodies: ``gateway.api.common.read_json``);
each is logged without the body or any personal data."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.http import json_error
from gateway.metrics import WEBHOOK_REJECTED

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refuse(request: web.Request, message: str) -> web.Response:
    log.warning("refused %s %s: %s", request.method, request.path, message)
    if request.path.startswith("/api/"):
        return json_error(400, "invalid_request", message)
    return web.Response(status=400, text=f"bad request: {message}\n")


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        # NUL cannot be stored in a PostgreSQL text column: refuse it up front (a 400, not a 500).
        if "\x00" in request.path or any("\x00" in value for value in request.query.values()):
            return _refuse(request, "NUL characters are not accepted in the URL")
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app._client_max_size  # noqa: SLF001 — aiohttp keeps it private
        resource = request.match_info.route.resource
        WEBHOOK_REJECTED.labels(resource.canonical if resource else "?", "too_large").inc()
        log.warning("refused %s %s: body larger than %d bytes (Content-Length %s)", request.method, request.path,
                    limit, request.headers.get("Content-Length", "absent"))
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit, actual_size=limit + 1,
            text=f"request body too large: the limit is {limit // 1024} KiB\n") from None
