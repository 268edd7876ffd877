"""The IMAP poller as a background service of ``gateway serve`` (when ``GATEWAY_IMAP_HOST`` is set).

Wires the fetcher (channels/email/imap.py) to the database: the checkpoint lives in ``kv``,
each message is parsed and ingested through ``Core.ingest`` (deduplicated on Message-ID), and a
message that cannot be parsed — or keeps failing to be stored for a reason that is not the
database being away — is kept in ``email_dead_letters`` and counted, never dropped.
"""
from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError, OperationalError

from channels.base import MalformedPayload
from channels.email.adapter import email_options
from channels.email.imap import Checkpoint, HandlerOutcome, ImapFetcher
from channels.email.parse import parse_email
from conversations.email_mailbox import checkpoint_key, dead_letter, load_checkpoint, save_checkpoint
from gateway.http import GATEWAY
from gateway.metrics import MESSAGES_IN

if TYPE_CHECKING:
    from gateway.context import Gateway

log = logging.getLogger(__name__)

DEAD_LETTERS = Counter("gateway_email_dead_letters_total", "Fetched emails kept in the dead-letter table",
                       ["reason"])
FETCHED = Counter("gateway_email_fetched_total", "Emails fetched over IMAP by outcome", ["outcome"])
# A message whose storing fails this many times in a row (not for a connection problem) is dead-lettered,
# so one poisonous message cannot block the mailbox.
MAX_STORE_FAILURES = 3
FETCHER = "email_fetcher"


class KvCheckpointStore:
    """The fetcher's checkpoint in the core ``kv`` table."""

    def __init__(self, gateway: "Gateway", key: str) -> None:
        self.gateway = gateway
        self.key = key

    async def load(self) -> Checkpoint | None:
        value = await self.gateway.db.run(load_checkpoint, self.gateway.db, self.key)
        if not value:
            return None
        return Checkpoint(int(value["uidvalidity"]), int(value["last_uid"]))

    async def save(self, checkpoint: Checkpoint) -> None:
        await self.gateway.db.run(save_checkpoint, self.gateway.db, self.key, checkpoint.uidvalidity,
                                  checkpoint.last_uid)


class MailHandler:
    """Parse, ingest, or dead-letter one fetched message."""

    def __init__(self, gateway: "Gateway", mailbox_key: str) -> None:
        self.gateway = gateway
        self.mailbox_key = mailbox_key
        self.options = email_options(gateway.config)
        self.address = (gateway.settings.email_address or gateway.settings.imap_user or "").lower()
        self._failures: dict[tuple[int, int], int] = {}

    async def _dead_letter(self, uidvalidity: int, uid: int, raw: bytes, error: str, reason: str) -> HandlerOutcome:
        db = self.gateway.db
        row_id, created = await db.run(lambda: dead_letter(db, mailbox=self.mailbox_key, uidvalidity=uidvalidity,
                                                           uid=uid, raw=raw, error=error,
                                                           now=self.gateway.core.clock.now()))
        if created:
            DEAD_LETTERS.labels(reason).inc()
        FETCHED.labels("dead_letter").inc()
        # The error text may quote the message; only the reason is logged.
        log.warning("email UID %s (UIDVALIDITY %s) kept as dead letter %s: %s", uid, uidvalidity, row_id, reason)
        return "dead_letter"

    async def __call__(self, uidvalidity: int, uid: int, raw: bytes) -> HandlerOutcome:
        try:
            inbound = parse_email(raw, mailbox=self.address, received_at=self.gateway.core.clock.now(),
                                  max_attachment_bytes=self.options.max_attachment_bytes,
                                  plus_addressing=self.options.plus_addressing)
        except MalformedPayload as exc:
            return await self._dead_letter(uidvalidity, uid, raw, f"malformed: {exc}", "malformed")
        except Exception as exc:  # noqa: BLE001 - a parser bug must not lose the message either
            return await self._dead_letter(uidvalidity, uid, raw, "parser error: " + "".join(
                traceback.format_exception_only(type(exc), exc)).strip(), "parser_error")
        try:
            result = await self.gateway.core.ingest(inbound)
        except OperationalError:
            raise  # the database is away: retry later, the checkpoint stays
        except (DBAPIError, ValueError, TypeError, KeyError, AttributeError) as exc:
            key = (uidvalidity, uid)
            self._failures[key] = self._failures.get(key, 0) + 1
            if self._failures[key] < MAX_STORE_FAILURES:
                raise
            self._failures.pop(key, None)
            return await self._dead_letter(uidvalidity, uid, raw, "could not be stored: " + "".join(
                traceback.format_exception_only(type(exc), exc)).strip(), "store_error")
        self._failures.pop((uidvalidity, uid), None)
        outcome = "duplicate" if result.duplicate else "stored"
        MESSAGES_IN.labels("email", outcome).inc()
        FETCHED.labels(outcome).inc()
        return "stored"


def build_fetcher(gateway: "Gateway", *, backoff_initial: float = 1.0) -> ImapFetcher | None:
    """The fetcher for the configured mailbox, or None when IMAP is not configured."""
    settings = gateway.settings
    if not settings.imap_host or not settings.imap_user or settings.imap_password is None:
        return None
    options = email_options(gateway.config)
    mailbox = f"{settings.imap_user}@{settings.imap_host}:{settings.imap_port or ''}/{options.folder}"
    return ImapFetcher(
        host=settings.imap_host, port=settings.imap_port, user=settings.imap_user,
        password=settings.imap_password.get_secret_value(), tls=settings.imap_tls, folder=options.folder,
        move_to=options.move_to, poll_seconds=options.poll_seconds, idle=options.idle, timeout=options.timeout,
        store=KvCheckpointStore(gateway, checkpoint_key(mailbox)), handler=MailHandler(gateway, mailbox),
        backoff_initial=min(backoff_initial, options.poll_seconds),
    )


async def start(app: web.Application) -> None:
    gateway = app[GATEWAY]
    fetcher = build_fetcher(gateway)
    if fetcher is None:
        return
    gateway.extras[FETCHER] = fetcher
    fetcher.start()
    log.info("email: polling IMAP folder %s (IDLE %s)", fetcher.folder, "on" if fetcher.idle else "off")


async def stop(app: web.Application) -> None:
    fetcher = app[GATEWAY].extras.pop(FETCHER, None)
    if fetcher is not None:
        await fetcher.stop()
