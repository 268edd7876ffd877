"""The conversation core: what every channel and the API talk to."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from config.loader import GatewayConfig
from config.settings import Settings
from conversations.chat_dialogue import chat_dialogue
from conversations.clock import Clock
from conversations.dialogue import text_dialogue
from conversations.email_dialogue import email_dialogue
from conversations.ingest import Dialogue, IngestResult, ingest_sync
from conversations.ivr_dialogue import voice_dialogue
from conversations.language import detect_language
from conversations.messages import InboundMessage
from conversations.templates import Templates
from store.db import Database
from store.models import Contact

log = logging.getLogger(__name__)

# Dialogue per channel; a channel not listed uses the text dialogue.
DIALOGUES: dict[str, Dialogue] = {"sms": text_dialogue, "ivr": voice_dialogue, "telegram": chat_dialogue,
                                   "email": email_dialogue}


class RouterProtocol(Protocol):
    def route(self, text: str, channel: str | None = None, category_hint: str | None = None) -> Any: ...


OutboxListener = Callable[[tuple[int, ...]], None]


class Core:
    """Settings, configuration, database, router, templates and clock, plus outbox listeners.

    Listeners are told the ids of outbox rows once their transaction has committed (the
    in-process worker wakes up; the RQ backend enqueues them).
    """

    def __init__(self, settings: Settings, config: GatewayConfig, db: Database,
                 router: RouterProtocol | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.config = config
        self.db = db
        self.clock = clock or Clock()
        self.templates = Templates(config)
        if router is None:
            from conversations.routing import Router

            router = Router.from_config(config)
        self.router = router
        self._listeners: list[OutboxListener] = []

    def add_outbox_listener(self, listener: OutboxListener) -> None:
        self._listeners.append(listener)

    def outbox_committed(self, ids: tuple[int, ...] | list[int]) -> None:
        if not ids:
            return
        for listener in self._listeners:
            try:
                listener(tuple(ids))
            except Exception:  # a listener failing must never fail the request; the sweeper catches up
                log.exception("outbox listener failed")

    def detected_language(self, inbound: InboundMessage) -> str | None:
        """The language ``inbound`` is in, when it is one we answer in."""
        detected = None
        if inbound.language and inbound.language in self.config.templates:
            detected = inbound.language
        elif inbound.text.strip() and inbound.kind == "text":
            detected = detect_language(inbound.text)
        return detected if detected and detected in self.config.templates else None

    def reply_language(self, contact: Contact, detected: str | None) -> str:
        """The language to answer in: what the citizen wrote in (remembered), else what we last knew."""
        if detected and contact.language != detected:
            contact.language = detected
        return self.templates.language(detected or contact.language)

    def format_date(self, value: datetime, language: str) -> str:
        return value.strftime("%d/%m/%Y")

    def ingest_in_session(self, inbound: InboundMessage) -> IngestResult:
        return ingest_sync(self, inbound, DIALOGUES.get(inbound.channel, text_dialogue))

    async def ingest(self, inbound: InboundMessage) -> IngestResult:
        """Persist and act on ``inbound`` (off the event loop), then wake delivery."""
        result = await self.db.run(self.ingest_in_session, inbound)
        self.outbox_committed(result.outbox_ids)
        return result
