"""A fake Twilio REST API for the benchmark, in its own process.

``POST /2010-04-01/Accounts/{sid}/Messages.json`` accepts an outbound SMS and records when it
arrived (``time.monotonic()``: CLOCK_MONOTONIC is system-wide on Linux, so the load generator
can subtract its own send times). ``GET /_bench/replies`` returns ``{number: [t, ...]}``;
``GET /_bench/count`` the number of messages received.

    python -m bench.provider --port 8901
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import defaultdict

from aiohttp import web


class Provider:
    def __init__(self, account_sid: str) -> None:
        self.account_sid = account_sid
        self.replies: dict[str, list[float]] = defaultdict(list)
        self.count = 0
        self._ids = itertools.count(1)

    async def create(self, request: web.Request) -> web.Response:
        form = await request.post()
        at = time.monotonic()
        to = str(form.get("To", ""))
        self.replies[to].append(at)
        self.count += 1
        sid = f"SMb{next(self._ids):031x}"
        body = {"sid": sid, "account_sid": self.account_sid, "to": to, "from": str(form.get("From", "")),
                "body": str(form.get("Body", "")), "status": "queued", "num_segments": "1",
                "direction": "outbound-api", "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"}
        return web.Response(text=json.dumps(body), status=201, content_type="application/json")

    async def list(self, request: web.Request) -> web.Response:
        return web.json_response({"messages": [], "next_page_uri": None, "page": 0, "page_size": 50,
                                  "uri": request.path_qs})

    async def dump(self, request: web.Request) -> web.Response:
        prefix = request.query.get("prefix", "")
        return web.json_response({k: v for k, v in self.replies.items() if k.startswith(prefix)})

    async def counter(self, request: web.Request) -> web.Response:
        return web.json_response({"count": self.count})

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def app(self) -> web.Application:
        app = web.Application()
        path = "/2010-04-01/Accounts/{sid}/Messages.json"
        app.router.add_post(path, self.create)
        app.router.add_get(path, self.list)
        app.router.add_get("/_bench/replies", self.dump)
        app.router.add_get("/_bench/count", self.counter)
        app.router.add_get("/healthz", self.health)
        return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--account-sid", default="AC" + "b" * 32)
    args = parser.parse_args()
    web.run_app(Provider(args.account_sid).app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
