"""The email fetcher's durable state: the IMAP checkpoint (in ``kv``) and the dead-letter table."""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from store.db import Database
from store.models import KeyValue
from store.models_email import EmailDeadLetter
from store.types import utcnow

MAX_ERROR = 4000


def checkpoint_key(mailbox: str) -> str:
    return f"imap-checkpoint:{mailbox}"[:255]


def load_checkpoint(db: Database, key: str) -> dict[str, Any] | None:
    with db.session() as session:
        row = session.get(KeyValue, key)
        return dict(row.value) if row is not None else None


def save_checkpoint(db: Database, key: str, uidvalidity: int, last_uid: int) -> None:
    """Upsert; never moves the checkpoint backwards within one UIDVALIDITY."""
    for _ in range(3):
        try:
            with db.session() as session:
                row = session.get(KeyValue, key)
                if row is None:
                    session.add(KeyValue(key=key, value={"uidvalidity": uidvalidity, "last_uid": last_uid},
                                         updated_at=utcnow()))
                    return
                current = dict(row.value)
                if current.get("uidvalidity") == uidvalidity and int(current.get("last_uid", 0)) >= last_uid:
                    return
                row.value = {"uidvalidity": uidvalidity, "last_uid": last_uid}
                row.updated_at = utcnow()
                session.add(row)
                return
        except IntegrityError:  # two writers creating the row at once: read it again
            continue


def dead_letter(db: Database, *, mailbox: str, uidvalidity: int, uid: int, raw: bytes, error: str,
                now: datetime | None = None) -> tuple[int, bool]:
    """Keep ``raw`` with the reason it could not be processed; returns (id, created)."""
    digest = hashlib.sha256(raw).hexdigest()
    try:
        with db.session() as session:
            found = session.exec(select(EmailDeadLetter).where(EmailDeadLetter.mailbox == mailbox,
                                                                EmailDeadLetter.sha256 == digest)).first()
            if found is not None:
                return found.id, False  # type: ignore[return-value]
            row = EmailDeadLetter(mailbox=mailbox[:320], uidvalidity=uidvalidity, uid=uid, sha256=digest,
                                  size=len(raw), raw=raw, error=error[:MAX_ERROR], created_at=now or utcnow())
            session.add(row)
            session.flush()
            return row.id, True  # type: ignore[return-value]
    except IntegrityError:
        with db.session() as session:
            found = session.exec(select(EmailDeadLetter).where(EmailDeadLetter.mailbox == mailbox,
                                                                EmailDeadLetter.sha256 == digest)).one()
            return found.id, False  # type: ignore[return-value]
