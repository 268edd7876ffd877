"""Recorded Telegram Updates (tests/channels/telegram/fixtures) and posting them to the webhook."""
from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "channels" / "telegram" / "fixtures"
SECRET = "s3cr3t-token_for-tests"
_ids = itertools.count(900_000_000)


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def fresh(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded Update with a new update_id (and message_id), and ``changes`` applied to its message.

    ``text=...`` replaces the text; ``user=...`` moves it to another private user; ``data=...``
    sets a callback's data.
    """
    update = copy.deepcopy(load(name))
    update["update_id"] = next(_ids)
    body = next(update[k] for k in ("message", "edited_message", "callback_query", "channel_post", "my_chat_member")
                if k in update)
    if "message_id" in body:
        body["message_id"] = next(_ids) % 1_000_000
    if "callback_query" in update:
        body["id"] = str(next(_ids) * 7919)
    user = changes.pop("user", None)
    if user is not None:
        body["from"]["id"] = user
        chat = body["message"]["chat"] if "callback_query" in update else body["chat"]
        chat["id"] = user
        if "contact" in body:
            body["contact"]["user_id"] = user
    for key, value in changes.items():
        body[key] = value
    text = body.get("text")
    if isinstance(text, str) and text.startswith("/"):  # a command, with its entity as Telegram marks it
        body["entities"] = [{"offset": 0, "length": len(text.split(" ", 1)[0]), "type": "bot_command"}]
    return update


async def post_update(client: Any, update: dict[str, Any] | bytes, *, secret: str | None = SECRET) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    body = update if isinstance(update, bytes) else json.dumps(update, ensure_ascii=False).encode()
    return await client.post("/webhooks/telegram", data=body, headers=headers)
