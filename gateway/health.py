"""``GET /healthz`` (database, and Redis when configured) and ``GET /metrics``."""
from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.http import GATEWAY


async def healthz(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    checks: dict[str, str] = {}
    ok = True
    try:
        await asyncio.wait_for(gw.db.run(gw.db.ping), 5)
        checks["database"] = "ok"
    except Exception as exc:
        ok, checks["database"] = False, f"error: {type(exc).__name__}"
    if gw.settings.redis_url:
        try:
            from redis.asyncio import Redis

            client = Redis.from_url(gw.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
            try:
                await client.ping()
            finally:
                await client.aclose()
            checks["redis"] = "ok"
        except Exception as exc:
            ok, checks["redis"] = False, f"error: {type(exc).__name__}"
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks},
                             status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    try:
        await gw.db.run(gw.delivery.due_count_sync)
    except Exception:
        pass
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
