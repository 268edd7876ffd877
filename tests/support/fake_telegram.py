"""A fake Telegram Bot API on 127.0.0.1 (reached through ``GATEWAY_TELEGRAM_API_BASE``).

It serves ``/bot<token>/<method>`` for getMe, sendMessage, answerCallbackQuery, getFile,
setWebhook, deleteWebhook and getWebhookInfo, and file downloads under
``/file/bot<token>/<path>``. Bodies are accepted form-encoded (as python-telegram-bot sends
them, with JSON-encoded non-string values) and as JSON (as curl users send them). Every call is
recorded; errors can be planned per method: 429 with ``parameters.retry_after``, 403 "bot was
blocked by the user", 400, 500.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 7000000001
TOKEN = f"{BOT_ID}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
BLOCKED = "Forbidden: bot was blocked by the user"


@dataclass
class Planned:
    status: int
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    content_type: str
    at: float


def _decode(value: Any) -> Any:
    """Form values are strings; objects, arrays, numbers and booleans arrive JSON-encoded."""
    if isinstance(value, str) and value[:1] in ("{", "[") or value in ("true", "false"):
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            return value
    return value


class FakeTelegram:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.plan: dict[str, list[Planned]] = {}
        self.files: dict[str, tuple[str, bytes, bool]] = {}
        self.downloads: list[str] = []
        self.webhook: dict[str, Any] = {}
        self._message_ids = itertools.count(1000)
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- programming it -------------------------------------------------------------------
    def fail_next(self, method: str, status: int, description: str, *, retry_after: int | None = None,
                  times: int = 1) -> None:
        parameters = {"retry_after": retry_after} if retry_after is not None else {}
        self.plan.setdefault(method, []).extend(Planned(status, description, parameters) for _ in range(times))

    def block_next(self, times: int = 1) -> None:
        """The user blocked the bot: sendMessage answers 403."""
        self.fail_next("sendMessage", 403, BLOCKED, times=times)

    def add_file(self, file_id: str, data: bytes, file_path: str | None = None, *, report_size: bool = True) -> None:
        self.files[file_id] = (file_path or f"photos/file_{len(self.files)}.jpg", data, report_size)

    # -- what was asked -------------------------------------------------------------------
    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    @property
    def sent(self) -> list[dict[str, Any]]:
        """sendMessage calls that succeeded."""
        return [c.params for c in self.calls if c.method == "sendMessage" and c.params.get("_ok")]

    def to(self, chat_id: int | str) -> list[dict[str, Any]]:
        return [m for m in self.sent if str(m.get("chat_id")) == str(chat_id)]

    def texts(self, chat_id: int | str) -> list[str]:
        return [m["text"] for m in self.to(chat_id)]

    @staticmethod
    def callback_data(message: dict[str, Any]) -> list[str]:
        markup = message.get("reply_markup") or {}
        return [b.get("callback_data") for row in markup.get("inline_keyboard", []) for b in row]

    # -- serving ----------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.json()
            return dict(body) if isinstance(body, dict) else {}
        form = await request.post()
        return {k: _decode(v) for k, v in form.items() if isinstance(v, str)}

    @staticmethod
    def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    async def api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params, request.content_type, time.monotonic())
        self.calls.append(call)
        planned = self.plan.get(method)
        if planned:
            p = planned.pop(0)
            return self._error(p.status, p.description, p.parameters)
        handler = getattr(self, f"m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        result = handler(params)
        if isinstance(result, web.Response):
            return result
        params["_ok"] = True
        return web.json_response({"ok": True, "result": result})

    def m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Plaintes citoyennes", "username": "PlaintesCitoyennesBot",
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    def m_sendMessage(self, params: dict[str, Any]) -> Any:
        if "chat_id" not in params or not params.get("text"):
            return self._error(400, "Bad Request: message text is empty")
        chat_id = int(params["chat_id"])
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        return {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                "from": self.m_getMe({}), "text": params["text"]}

    def m_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        if not params.get("callback_query_id"):
            return self._error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return True

    def m_getFile(self, params: dict[str, Any]) -> Any:
        found = self.files.get(str(params.get("file_id")))
        if found is None:
            return self._error(400, "Bad Request: invalid file_id")
        path, data, report_size = found
        result: dict[str, Any] = {"file_id": params["file_id"], "file_unique_id": f"u{abs(hash(path)) % 10**8}",
                                  "file_path": path}
        if report_size:
            result["file_size"] = len(data)
        return result

    def m_setWebhook(self, params: dict[str, Any]) -> Any:
        if not str(params.get("url", "")).startswith(("https://", "http://")):
            return self._error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = dict(params)
        return True

    def m_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        return True

    def m_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0}

    async def download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        self.downloads.append(path)
        for stored_path, data, _ in self.files.values():
            if stored_path == path:
                return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")

    async def start(self) -> "FakeTelegram":
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self.api)
        app.router.add_get("/bot{token}/{method}", self.api)
        app.router.add_get("/file/bot{token}/{path:.+}", self.download)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
