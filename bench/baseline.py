"""The baseline: a bare aiohttp handler that reads the same form and answers the same empty TwiML.

Nothing is checked or stored, so its figures are what the machine, aiohttp and the load
generator cost on their own; every gateway figure is also printed as a ratio to them.

    python -m bench.baseline --port 8902
"""
from __future__ import annotations

import argparse

from aiohttp import web

from channels.sms.render import empty_twiml


async def inbound(request: web.Request) -> web.Response:
    form = await request.post()
    _ = {key: value for key, value in form.items() if isinstance(value, str)}
    return web.Response(text=empty_twiml(), content_type="text/xml")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post("/webhooks/twilio/sms", inbound)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
