"""The conversation core: what every channel and the API talk to."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from config.loader import GatewayConfig
from config.settings import Settings
from conversations import text_features
from conversations.chat_dialogue import chat_complaint_text, chat_dialogue
from conversations.clock import Clock
from conversations.dialogue import complaint_text, text_dialogue
from conversations.email_dialogue import email_dialogue
from conversations.ingest import Dialogue, IngestResult, ingest_batch_sync, ingest_sync
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
# The text a channel's dialogue would open a complaint with (see ``Core.prepare``).
COMPLAINT_TEXTS: dict[str, Callable[[InboundMessage], str | None]] = {"sms": complaint_text,
                                                                       "telegram": chat_complaint_text}


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
        self._batcher: IngestBatcher | None = None

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

    def prepare(self, inbound: InboundMessage) -> str | None:
        """The work on ``inbound`` that needs no database, done before its transaction (on SQLite
        that holds the write lock every process waits for): returns the detected language, and
        routes and encodes for duplicate detection the text a new complaint would have, should
        the dialogue open one (the router and ``text_features.encoded`` keep the answers; for a
        follow-up the guess is wasted)."""
        guess = COMPLAINT_TEXTS.get(inbound.channel)
        text = guess(inbound) if guess is not None and inbound.kind == "text" else None
        if text:
            self.router.route(text, channel=inbound.channel)
            text_features.encoded(text)
        return self.detected_language(inbound)

    def reply_language(self, contact: Contact, detected: str | None) -> str:
        """The language to answer in: what the citizen wrote in (remembered), else what we last knew."""
        if detected and contact.language != detected:
            contact.language = detected
        return self.templates.language(detected or contact.language)

    def format_date(self, value: datetime, language: str) -> str:
        """``dd/mm/yyyy`` (what ``strftime("%d/%m/%Y")`` writes, at a fifth of its cost)."""
        return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"

    def ingest_in_session(self, inbound: InboundMessage) -> IngestResult:
        return ingest_sync(self, inbound, DIALOGUES.get(inbound.channel, text_dialogue))

    async def ingest(self, inbound: InboundMessage, *, shed: bool = False) -> IngestResult:
        """Persist and act on ``inbound`` (off the event loop, in a group commit with the messages
        arriving meanwhile); delivery is woken once the transaction has committed.

        ``shed``: the caller's provider redelivers on a 503 (Twilio, Telegram), so when too many
        messages already wait, raise ``IngestBacklogFull`` at once rather than queue another."""
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._batcher.loop is not loop:
            self._batcher = IngestBatcher(self, loop)
        return await self._batcher.submit(inbound, DIALOGUES.get(inbound.channel, text_dialogue), shed)


class IngestBacklogFull(Exception):
    """Too many inbound messages are already waiting for the database: answer 503, the sender retries."""


class IngestBatcher:
    """Group commit for ingests: messages that arrive while a transaction is being written wait
    for the next one and share it, up to ``max_batch`` messages a transaction.

    At low load every message gets its own transaction at once (no waiting to fill a batch);
    under load the cost of the transaction is shared. SQLite has one writer, so one batch is
    written at a time; PostgreSQL writes a few concurrently.
    """

    def __init__(self, core: Core, loop: asyncio.AbstractEventLoop, max_batch: int = 32) -> None:
        self.core = core
        self.loop = loop
        self.max_batch = max_batch
        self.parallel = 1 if core.db.is_sqlite else 4
        self.max_pending = core.settings.max_pending_ingests
        self.max_wait = core.settings.max_ingest_wait_seconds
        # (message, dialogue, its caller's future, when it arrived), oldest first.
        self._pending: list[tuple[InboundMessage, Dialogue, asyncio.Future[IngestResult], float]] = []
        self._writers = 0

    async def submit(self, inbound: InboundMessage, dialogue: Dialogue, shed: bool = False) -> IngestResult:
        if shed and self._pending:
            waited = self.loop.time() - self._pending[0][3]
            if len(self._pending) >= self.max_pending or waited > self.max_wait:
                raise IngestBacklogFull(f"{len(self._pending)} inbound messages wait for the database, the "
                                        f"oldest for {waited:.1f} s")
        done: asyncio.Future[IngestResult] = self.loop.create_future()
        self._pending.append((inbound, dialogue, done, self.loop.time()))
        if self._writers < self.parallel:
            self._writers += 1
            self.loop.create_task(self._write())
        return await done

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                try:
                    outcomes = await self.core.db.run(ingest_batch_sync, self.core,
                                                      [(inbound, dialogue) for inbound, dialogue, _, _ in batch])
                except asyncio.CancelledError as exc:
                    for _, _, done, _ in batch + self._pending:
                        if not done.done():
                            done.set_exception(exc)
                    self._pending = []
                    raise
                except Exception as exc:  # noqa: BLE001  (handed to every waiter)
                    outcomes = [exc] * len(batch)
                ids = [i for o in outcomes if isinstance(o, IngestResult) for i in o.outbox_ids]
                self.core.outbox_committed(ids)
                for (_, _, done, _), outcome in zip(batch, outcomes):
                    if done.done():
                        continue
                    if isinstance(outcome, BaseException):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)
        finally:
            self._writers -= 1
