"""The queue of chat media to download (``telegram_files``): claim, store, or tell the citizen.

The webhook only records what to fetch (in the ingest transaction); a background fetcher claims
rows with a lease (an atomic conditional UPDATE, like the outbox), downloads them through the
channel adapter and records the outcome here. Files are kept with ``store.files.save_file``
under the data directory, never behind a public URL.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, update
from sqlmodel import select

from conversations.chat_dialogue import CHANNEL, too_big_note
from conversations.outbox import queue_message
from store.files import save_file
from store.models import Complaint, Identity, Message
from store.models_telegram import TelegramFile

if TYPE_CHECKING:
    from conversations.core import Core

MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class FileJob:
    id: int
    file_id: str
    attempts: int


def _claimable(now: datetime):  # type: ignore[no-untyped-def]
    return or_(and_(TelegramFile.status == "pending", TelegramFile.next_attempt_at <= now),
               and_(TelegramFile.status == "fetching", TelegramFile.locked_until < now))


def claim_files(core: "Core", limit: int = 8) -> list[FileJob]:
    """Claim up to ``limit`` due downloads; a row another fetcher holds is skipped."""
    now = core.clock.now()
    jobs: list[FileJob] = []
    with core.db.session() as session:
        ids = session.exec(select(TelegramFile.id).where(_claimable(now))
                           .order_by(TelegramFile.next_attempt_at).limit(limit)).all()
        for row_id in ids:
            taken = session.execute(update(TelegramFile).where(TelegramFile.id == row_id, _claimable(now)).values(
                status="fetching", locked_until=now + LEASE, attempts=TelegramFile.attempts + 1,
                updated_at=now)).rowcount  # type: ignore[attr-defined]
            if taken:
                row = session.get(TelegramFile, row_id)
                assert row is not None
                jobs.append(FileJob(row.id, row.file_id, row.attempts))  # type: ignore[arg-type]
    return jobs


def record_stored(core: "Core", job: FileJob, data: bytes, file_path: str | None = None) -> int | None:
    """Keep the bytes and link them to the message and (if known by now) the complaint."""
    now = core.clock.now()
    with core.db.session() as session:
        row = session.get(TelegramFile, job.id)
        if row is None or row.status != "fetching":
            return None
        stored = save_file(session, core.settings.data_dir, data, content_type=row.content_type,
                           filename=row.filename or (file_path.rsplit("/", 1)[-1] if file_path else None),
                           message_id=row.message_id, complaint_id=row.complaint_id)
        row.status, row.stored_file_id, row.size = "stored", stored.id, len(data)
        row.locked_until, row.updated_at, row.last_error = None, now, None
        session.add(row)
        message = session.get(Message, row.message_id)
        if message is not None:
            attachments = [dict(a) for a in (message.attachments or [])]
            for att in attachments:
                if att.get("provider_id") == row.file_id:
                    att["stored_file_id"] = stored.id
                    att["size"] = len(data)
            message.attachments = attachments
            session.add(message)
        return stored.id


def record_too_big(core: "Core", job: FileJob, size: int | None) -> tuple[int, ...]:
    """Over the limit: nothing kept, and the citizen is told (once per file)."""
    now = core.clock.now()
    with core.db.session() as session:
        row = session.get(TelegramFile, job.id)
        if row is None or row.status != "fetching":
            return ()
        row.status, row.locked_until, row.updated_at = "too_big", None, now
        row.size = size or row.size
        session.add(row)
        message = session.get(Message, row.message_id)
        identity = session.get(Identity, message.identity_id) if message and message.identity_id else None
        if identity is None:
            return ()
        complaint = session.get(Complaint, row.complaint_id) if row.complaint_id else None
        language = core.templates.language(row.language)
        queued = queue_message(session, identity=identity, text=too_big_note(core, language, row.size),
                               intent_key=f"tg-file-too-big:{row.id}", language=language, complaint=complaint,
                               conversation_id=row.conversation_id, template="telegram.file_too_big",
                               essential=False, fallback=False)
        return (queued.outbox_id,) if queued else ()


def record_failed(core: "Core", job: FileJob, reason: str, *, transient: bool,
                  retry_after: float | None = None) -> None:
    now = core.clock.now()
    with core.db.session() as session:
        row = session.get(TelegramFile, job.id)
        if row is None or row.status != "fetching":
            return
        row.last_error, row.locked_until, row.updated_at = reason[:500], None, now
        if transient and row.attempts < MAX_ATTEMPTS:
            delay = max(retry_after or 0.0, min(2 ** row.attempts, 600) * random.uniform(0.8, 1.2))
            row.status, row.next_attempt_at = "pending", now + timedelta(seconds=delay)
        else:
            row.status = "failed"
        session.add(row)


def pending_count(core: "Core") -> int:
    with core.db.session() as session:
        return len(session.exec(select(TelegramFile.id).where(
            TelegramFile.status.in_(("pending", "fetching")))).all())  # type: ignore[attr-defined]


__all__ = ["FileJob", "claim_files", "record_stored", "record_too_big", "record_failed", "pending_count", "CHANNEL"]
