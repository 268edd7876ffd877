"""Outbound Telegram formatting: message chunks and keyboards (python-telegram-bot markup types).

Texts are sent as plain text (no parse mode), so nothing a citizen or an officer typed can
break the markup. ``OutboundMessage.buttons`` become an inline keyboard; ``meta["keyboard"]``
asks for a reply keyboard instead: ``"contact"`` (share my phone number), ``"location"``,
``"contact_location"`` (both), or ``"remove"``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from conversations.messages import Button

TEXT_LIMIT = 4096  # Telegram's maximum message length
CALLBACK_DATA_LIMIT = 64  # bytes

ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Texts longer than Telegram accepts go as several messages, cut at a line or a space."""
    text = text.replace("\r\n", "\n").strip() or "…"
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    parts.append(text)
    return parts


def inline_keyboard(rows: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    rows = tuple(row for row in rows if row)
    if not rows:
        return None
    for row in rows:
        for button in row:
            if len(button.data.encode()) > CALLBACK_DATA_LIMIT:
                raise ValueError(f"callback data {button.data!r} is longer than {CALLBACK_DATA_LIMIT} bytes")
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in rows])


def reply_keyboard(kind: str | None, labels: Mapping[str, str]) -> ReplyKeyboardMarkup | ReplyKeyboardRemove | None:
    if kind == "remove":
        return ReplyKeyboardRemove()
    buttons: list[list[KeyboardButton]] = []
    if kind in ("location", "contact_location"):
        buttons.append([KeyboardButton(labels.get("location", "📍"), request_location=True)])
    if kind in ("contact", "contact_location"):
        buttons.append([KeyboardButton(labels.get("contact", "📱"), request_contact=True)])
    if not buttons:
        return None
    return ReplyKeyboardMarkup(buttons, resize_keyboard=True, one_time_keyboard=True)


def reply_markup(buttons: tuple[tuple[Button, ...], ...], meta: Mapping[str, Any]) -> ReplyMarkup | None:
    """The markup for the last chunk of a message: inline buttons win over a reply keyboard."""
    inline = inline_keyboard(buttons)
    if inline is not None:
        return inline
    return reply_keyboard(meta.get("keyboard"), meta.get("keyboard_labels") or {})
