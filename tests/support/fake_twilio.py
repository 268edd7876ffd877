"""A fake Twilio REST API on 127.0.0.1 (reached through ``GATEWAY_TWILIO_API_BASE``).

It implements ``POST`` and ``GET`` ``/2010-04-01/Accounts/{sid}/Messages.json`` as the SDK
calls them, records every accepted message, and can be told to answer the next requests with
errors (500, 429 with Retry-After, 400 with a Twilio error code) or to hang. It also serves call
recordings (``GET /2010-04-01/Accounts/{sid}/Recordings/{RecordingSid}[.mp3|.wav]``, HTTP basic
auth with the account SID) added with ``add_recording``, and records every fetch.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

from aiohttp import web


@dataclass
class Planned:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeTwilio:
    def __init__(self, account_sid: str = "AC" + "0" * 32) -> None:
        self.account_sid = account_sid
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.plan: list[Planned] = []
        self._ids = itertools.count(1)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.recordings: dict[str, tuple[bytes, str]] = {}
        self.recording_fetches: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, status: int, code: int | None = None, message: str = "error",
                  retry_after: float | None = None, times: int = 1, delay: float = 0.0) -> None:
        body = {"code": code, "message": message, "status": status, "more_info": ""}
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.plan.extend(Planned(status, body, headers, delay) for _ in range(times))

    def hang_next(self, seconds: float) -> None:
        """Accept the next message, but only after ``seconds`` (a slow provider)."""
        self.plan.append(Planned(201, {}, {}, seconds))

    def to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["to"] == number]

    def _resource(self, sid: str, form: dict[str, str], now: datetime) -> dict[str, Any]:
        return {
            "sid": sid, "account_sid": self.account_sid, "to": form.get("To"), "from": form.get("From"),
            "body": form.get("Body", ""), "status": "queued", "num_segments": "1", "direction": "outbound-api",
            "date_created": format_datetime(now), "date_sent": format_datetime(now), "date_updated": format_datetime(now),
            "status_callback": form.get("StatusCallback"), "error_code": None, "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json", "_at": now,
        }

    async def create(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.requests.append(form)
        planned = self.plan.pop(0) if self.plan else Planned(201)
        if planned.delay:
            await asyncio.sleep(planned.delay)
        if planned.status >= 300:
            return web.json_response(planned.body, status=planned.status, headers=planned.headers)
        sid = f"SMf{next(self._ids):031x}"
        resource = self._resource(sid, form, datetime.now(timezone.utc))
        self.messages.append(resource)
        return web.json_response({k: v for k, v in resource.items() if k != "_at"}, status=201)

    async def list(self, request: web.Request) -> web.Response:
        to = request.query.get("To")
        found = [{k: v for k, v in m.items() if k != "_at"} for m in self.messages if not to or m["to"] == to]
        return web.Response(text=json.dumps({"messages": found, "next_page_uri": None, "page": 0,
                                             "page_size": 50, "uri": request.path_qs}),
                            content_type="application/json")

    def add_recording(self, recording_sid: str, content: bytes, content_type: str = "audio/mpeg") -> str:
        """Make a recording available; returns its ``RecordingUrl`` as Twilio sends it (no extension)."""
        self.recordings[recording_sid] = (content, content_type)
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}"

    async def recording(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        sid, _, ext = name.partition(".")
        user = password = None
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        self.recording_fetches.append({"sid": sid, "ext": ext, "user": user, "password": password,
                                       "account": request.match_info["account"]})
        if user != self.account_sid or request.match_info["account"] != self.account_sid or not password:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        if sid not in self.recordings:
            return web.json_response({"code": 20404, "message": "not found", "status": 404}, status=404)
        content, content_type = self.recordings[sid]
        return web.Response(body=content, content_type=content_type)

    async def start(self) -> "FakeTwilio":
        app = web.Application()
        path = "/2010-04-01/Accounts/{sid}/Messages.json"
        app.router.add_post(path, self.create)
        app.router.add_get(path, self.list)
        app.router.add_get("/2010-04-01/Accounts/{account}/Recordings/{name}", self.recording)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
