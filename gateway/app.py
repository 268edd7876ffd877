"""The aiohttp application: routes, and the background tasks that run in the server process."""
from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from conversations.delivery import InProcessWorker
from gateway import (
    api,
    api_calls,
    api_reports,
    clocks_service,
    console,
    console_reports,
    email_poller,
    health,
    limits,
    open311,
    telegram_media,
    webhooks_sms,
    webhooks_telegram,
    webhooks_voice,
)
from gateway.context import Gateway
from gateway.http import GATEWAY

log = logging.getLogger(__name__)

# Each route module has ``setup(app)``; the list is explicit so what is served is readable here.
ROUTE_MODULES: list[Callable[[web.Application], None]] = [
    health.setup,
    api.setup,
    webhooks_sms.setup,
    webhooks_voice.setup,
    api_calls.setup,
    open311.setup,
    webhooks_telegram.setup,
    console.setup,
    api_reports.setup,
    console_reports.setup,
]
# Background services: ``async start(app)`` / ``async stop(app)`` pairs, run by serve.
BACKGROUND: list[tuple[Callable, Callable]] = [
    (clocks_service.start, clocks_service.stop),
    (telegram_media.start, telegram_media.stop),
    (email_poller.start, email_poller.stop),
]

MAX_BODY = 2 * 1024 * 1024


def create_app(gateway: Gateway, *, background: bool = True, services: bool = True) -> web.Application:
    """The HTTP app; with ``background`` it also runs delivery, and with ``services`` too the other
    background services (one process of several runs those)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[limits.body_limit])
    app[GATEWAY] = gateway
    app[CLOSING] = {"closing": False}
    for setup in ROUTE_MODULES:
        setup(app)
    app.on_response_prepare.append(_close_connections_when_closing)
    app.on_shutdown.append(_closing)
    if background:
        app.on_startup.append(_start_delivery)
        for start, stop in BACKGROUND if services else ():
            app.on_startup.append(start)
            app.on_shutdown.append(stop)
        # After the in-flight requests (whose replies it should still send), not before them.
        app.on_cleanup.append(_stop_delivery)
    app.on_cleanup.append(_close)
    return app


CLOSING: web.AppKey[dict[str, bool]] = web.AppKey("closing", dict)


async def _closing(app: web.Application) -> None:
    app[CLOSING]["closing"] = True


async def _close_connections_when_closing(request: web.Request, response: web.StreamResponse) -> None:
    """Answers finished during a graceful shutdown say ``Connection: close``, so a client does not
    send its next request on a connection the server is about to drop."""
    if request.app[CLOSING]["closing"]:
        response.force_close()
        response.headers["Connection"] = "close"  # aiohttp computed the header before this hook


async def _start_delivery(app: web.Application) -> None:
    gw = app[GATEWAY]
    if gw.settings.redis_url:
        from gateway.queue import RQBackend

        backend = RQBackend(gw.settings.redis_url, gw.settings.queue_name, gw.delivery)
        backend.start()
        gw.extras["delivery_backend"] = backend
        log.info("delivery: RQ workers on Redis (run `gateway worker`)")
    else:
        worker = InProcessWorker(gw.delivery, concurrency=gw.settings.delivery_concurrency)
        worker.start()
        gw.extras["delivery_backend"] = worker
        log.info("delivery: in-process")


async def _stop_delivery(app: web.Application) -> None:
    backend = app[GATEWAY].extras.pop("delivery_backend", None)
    if backend is not None:
        await backend.stop()


async def _close(app: web.Application) -> None:
    await app[GATEWAY].close()
