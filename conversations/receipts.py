"""Provider delivery receipts: never move a message's status backwards."""
from __future__ import annotations

from collections.abc import Mapping

from sqlmodel import select

from conversations.complaints import add_event
from conversations.core import Core
from store.models import Complaint, Message

FAILED = frozenset({"failed", "undelivered"})


def record_status(core: Core, channel: str, provider_message_id: str, status: str, error_code: str | None,
                  rank: Mapping[str, int]) -> str:
    """Apply a receipt; returns "updated", "stale" (older than what we know) or "unknown"."""
    now = core.clock.now()
    with core.db.session() as session:
        message = session.exec(select(Message).where(Message.channel == channel,
                                                     Message.provider_message_id == provider_message_id)).first()
        if message is None:
            return "unknown"
        current = rank.get(message.status, 0)
        if rank.get(status, 0) <= current:
            return "stale"
        message.status = status
        if status == "delivered":
            message.delivered_at = now
        if status in FAILED:
            message.error_code = (error_code or status)[:64]
            message.error_message = f"provider reported {status}" + (f" (error {error_code})" if error_code else "")
            if message.complaint_id:
                complaint = session.get(Complaint, message.complaint_id)
                if complaint is not None:
                    add_event(session, complaint, "delivery", "delivery_failed", at=now,
                              data={"message_id": message.id, "channel": channel, "status": status,
                                    "code": error_code})
        session.add(message)
    return "updated"
