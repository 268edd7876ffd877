"""Telegram Updates -> normalised types. Pure: no I/O, testable from recorded payloads.

The Update is read with python-telegram-bot's ``telegram.Update.de_json``. Messages are keyed
``<chat id>:<message id>`` (what Telegram redelivers), callback queries ``cb:<query id>``;
the ``update_id`` travels in ``raw`` and ``meta`` so the webhook can also dedupe on it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from telegram import CallbackQuery, ChatMemberUpdated, Message, MessageEntity, Update, User

from channels.base import MalformedPayload
from conversations.messages import Attachment, InboundMessage, MessageKind

CHANNEL = "telegram"
MAX_PAYLOAD = 1024 * 1024
PRIVATE = "private"
GROUP_TYPES = frozenset({"group", "supergroup", "channel"})

UpdateKind = Literal["message", "edit", "group", "member", "ignored"]


@dataclass(frozen=True)
class ParsedUpdate:
    """What the webhook has to do with one Update.

    ``message``: a private message, command, callback, contact, location or media (ingest it);
    ``edit``: an edited private message (update the stored one); ``group``: something said in a
    group or channel (one polite line, nothing stored); ``member``: the user blocked or
    unblocked the bot (``meta["status"]``); ``ignored``: genuine but unsupported (``reason``).
    """

    update_id: int
    kind: UpdateKind
    message: InboundMessage | None = None
    chat_id: int | None = None
    chat_type: str | None = None
    message_id: int | None = None
    sender: str | None = None
    language_code: str | None = None
    reason: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


def load_update(payload: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """The Update as a JSON object; raises ``MalformedPayload`` with the reason."""
    if isinstance(payload, Mapping):
        data: Any = dict(payload)
    else:
        if len(payload) > MAX_PAYLOAD:
            raise MalformedPayload(f"the update is larger than {MAX_PAYLOAD} bytes")
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedPayload(f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedPayload("the body must be a JSON object (a Telegram Update)")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise MalformedPayload("update_id is missing or is not a non-negative integer")
    return data


def user_urn(user: User) -> str:
    return f"{CHANNEL}:{user.id}"


def _name(user: User | None) -> str | None:
    if user is None:
        return None
    name = " ".join(part for part in (user.first_name, user.last_name) if part).strip()
    return name[:200] or None


def _command(message: Message) -> tuple[str, str] | None:
    """``("start", "payload")`` for ``/start@Bot payload``; None when not a command."""
    text = message.text or ""
    entities = message.entities or ()
    if not text.startswith("/") or not any(e.type == MessageEntity.BOT_COMMAND and e.offset == 0 for e in entities):
        return None
    head, _, rest = text.partition(" ")
    name = head[1:].split("@", 1)[0].casefold()
    return (name, rest.strip()) if name else None


def _attachments(message: Message) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    if message.photo:
        best = max(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        found.append(Attachment(content_type="image/jpeg", filename=f"photo-{best.file_unique_id}.jpg",
                                size=best.file_size, provider_id=best.file_id))
    for media, default_type in ((message.document, "application/octet-stream"), (message.voice, "audio/ogg"),
                                (message.audio, "audio/mpeg"), (message.video, "video/mp4"),
                                (message.video_note, "video/mp4")):
        if media is None:
            continue
        found.append(Attachment(content_type=getattr(media, "mime_type", None) or default_type,
                                filename=getattr(media, "file_name", None), size=media.file_size,
                                provider_id=media.file_id))
    return tuple(found)


def _message(update_id: int, message: Message, user: User, service_address: str | None, received_at: datetime,
             *, edited: bool = False) -> InboundMessage:
    chat_id = message.chat.id
    text = message.text or message.caption or ""
    meta: dict[str, Any] = {"update_id": update_id, "chat_id": chat_id, "chat_type": message.chat.type,
                            "message_id": message.message_id, "language_code": user.language_code}
    raw: dict[str, Any] = {"update_id": update_id, "update_type": "edited_message" if edited else "message",
                           "chat_id": chat_id, "message_id": message.message_id, "from_id": user.id,
                           "date": int(message.date.timestamp()), "language_code": user.language_code}
    kind: MessageKind = "text"
    attachments = _attachments(message)
    command = _command(message)
    if command is not None:
        kind = "command"
        meta["command"], meta["command_args"] = command
    elif message.contact is not None:
        kind = "contact"
        meta["contact_phone"] = message.contact.phone_number
        meta["contact_user_id"] = message.contact.user_id
        raw["contact_user_id"] = message.contact.user_id
    elif message.location is not None:
        kind = "location"
        meta["latitude"], meta["longitude"] = message.location.latitude, message.location.longitude
        raw["location"] = {"latitude": message.location.latitude, "longitude": message.location.longitude}
    elif attachments:
        kind = "media"
    elif not text:
        # A sticker, a poll, a dice...: stored, and the citizen is asked to write in words.
        meta["unsupported"] = next((k for k in ("sticker", "animation", "poll", "dice", "game", "story")
                                    if getattr(message, k, None) is not None), "other")
    if message.edit_date is not None:
        meta["edit_date"] = raw["edit_date"] = int(message.edit_date.timestamp())
    if attachments:
        raw["attachments"] = [{"file_id": a.provider_id, "size": a.size, "content_type": a.content_type}
                              for a in attachments]
    reply_to = message.reply_to_message
    return InboundMessage(
        channel=CHANNEL, provider_message_id=f"{chat_id}:{message.message_id}", sender=user_urn(user),
        service_address=service_address, text=text, received_at=received_at, kind=kind,
        attachments=attachments, thread_ref=f"{chat_id}:{reply_to.message_id}" if reply_to else None,
        raw=raw, sender_name=_name(user), meta=meta,
    )


def _callback(update_id: int, query: CallbackQuery, service_address: str | None,
              received_at: datetime) -> InboundMessage:
    user = query.from_user
    chat_id = query.message.chat.id if query.message is not None else user.id
    data = (query.data or "")[:64]
    meta = {"update_id": update_id, "chat_id": chat_id, "callback_query_id": query.id, "callback_data": data,
            "language_code": user.language_code,
            "message_id": query.message.message_id if query.message is not None else None}
    raw = {"update_id": update_id, "update_type": "callback_query", "callback_query_id": query.id,
           "chat_id": chat_id, "from_id": user.id, "data": data, "language_code": user.language_code}
    return InboundMessage(
        channel=CHANNEL, provider_message_id=f"cb:{query.id}", sender=user_urn(user), service_address=service_address,
        text=data, received_at=received_at, kind="callback", raw=raw, sender_name=_name(user), meta=meta,
    )


def _member(update_id: int, change: ChatMemberUpdated) -> ParsedUpdate:
    if change.chat.type != PRIVATE:
        return ParsedUpdate(update_id, "ignored", reason=f"membership change in a {change.chat.type} chat")
    status = change.new_chat_member.status
    return ParsedUpdate(update_id, "member", chat_id=change.chat.id, chat_type=PRIVATE,
                        sender=user_urn(change.from_user), meta={"status": status})


def parse_update(payload: bytes | str | Mapping[str, Any], *, received_at: datetime,
                 service_address: str | None = None) -> ParsedUpdate:
    """A webhook body -> ``ParsedUpdate``; raises ``MalformedPayload`` (answer 400) with the reason."""
    data = load_update(payload)
    update_id = int(data["update_id"])
    try:
        update = Update.de_json(data, None)
        return _classify(update, update_id, service_address, received_at)
    except MalformedPayload:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise MalformedPayload(f"not a readable Telegram Update: {type(exc).__name__}: {exc}") from exc


def _classify(update: Update, update_id: int, service_address: str | None, received_at: datetime) -> ParsedUpdate:
    if update.callback_query is not None:
        query = update.callback_query
        if query.from_user.is_bot:
            return ParsedUpdate(update_id, "ignored", reason="callback from a bot")
        return ParsedUpdate(update_id, "message", _callback(update_id, query, service_address, received_at),
                            chat_id=query.message.chat.id if query.message else query.from_user.id,
                            chat_type=query.message.chat.type if query.message else PRIVATE,
                            sender=user_urn(query.from_user), language_code=query.from_user.language_code)
    if update.my_chat_member is not None:
        return _member(update_id, update.my_chat_member)
    edited = update.edited_message is not None
    message = update.message or update.edited_message or update.channel_post or update.edited_channel_post
    if message is None:
        present = sorted(k for k in (update.to_dict().keys()) if k != "update_id")
        return ParsedUpdate(update_id, "ignored", reason=f"unsupported update type {', '.join(present) or 'none'}")
    chat = message.chat
    user = message.from_user
    language = user.language_code if user else None
    if chat.type in GROUP_TYPES:
        if edited or update.edited_channel_post is not None:
            return ParsedUpdate(update_id, "ignored", chat_id=chat.id, chat_type=chat.type,
                                reason=f"edited message in a {chat.type} chat")
        if user is not None and user.is_bot and update.channel_post is None:
            return ParsedUpdate(update_id, "ignored", chat_id=chat.id, chat_type=chat.type, reason="message from a bot")
        if message.new_chat_members or message.left_chat_member or message.group_chat_created \
                or message.supergroup_chat_created or message.migrate_to_chat_id or message.migrate_from_chat_id:
            return ParsedUpdate(update_id, "ignored", chat_id=chat.id, chat_type=chat.type,
                                reason=f"service message in a {chat.type} chat")
        return ParsedUpdate(update_id, "group", chat_id=chat.id, chat_type=chat.type, message_id=message.message_id,
                            language_code=language)
    if chat.type != PRIVATE:
        return ParsedUpdate(update_id, "ignored", chat_id=chat.id, chat_type=chat.type,
                            reason=f"unknown chat type {chat.type!r}")
    if user is None:
        raise MalformedPayload("a private message without a sender (from)")
    if user.is_bot:
        return ParsedUpdate(update_id, "ignored", chat_id=chat.id, chat_type=chat.type, reason="message from a bot")
    inbound = _message(update_id, message, user, service_address, received_at, edited=edited)
    return ParsedUpdate(update_id, "edit" if edited else "message", inbound, chat_id=chat.id, chat_type=chat.type,
                        message_id=message.message_id, sender=inbound.sender, language_code=language)
