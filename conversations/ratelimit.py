"""Limits on the automatic replies we send back (SMS pumping, floods, reply loops).

A flood of inbound messages, from one number or from thousands of random ones, must not make
the gateway send a flood of paid SMS. Before an automatic reply is queued, the recent outbound
messages are counted in the database (so the limits hold across any number of gateway
processes): per recipient identity within a window, and on the limited channels globally within
the last minute. Over a limit, the inbound message is still stored and the complaint still
created; the reply is recorded as a message with status ``suppressed`` (never sent) and counted
in ``gateway_replies_suppressed_total``. Replies people write (officers, agents) and status
notifications are counted but never suppressed.

Near a limit on PostgreSQL, the deciding transactions are serialised with an advisory lock so
concurrent transactions (and gateway processes) cannot both pass the last free slot.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import func, select, text
from sqlmodel import Session

from config.loader import GatewayConfig
from config.settings import ConfigError
from conversations.identities import CHANNEL_FOR_SCHEME
from conversations.messages import mask_urn
from store.models import Identity, Message

log = logging.getLogger(__name__)

REPLIES_SUPPRESSED = Counter("gateway_replies_suppressed_total",
                             "Automatic replies not sent because a rate limit was reached", ["channel", "limit"])
SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class ReplyLimits:
    """The ``[limits]`` table of the configuration."""

    sender_replies: int = 10
    sender_window_minutes: float = 10.0
    global_replies_per_minute: int = 300
    channels: tuple[str, ...] = ("sms",)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> "ReplyLimits":
        table: Any = config.raw.get("limits", {})
        if not isinstance(table, dict):
            raise ConfigError("GATEWAY_CONFIG: [limits] must be a table")
        known = {"sender_replies", "sender_window_minutes", "global_replies_per_minute", "channels"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"GATEWAY_CONFIG: [limits] has unknown keys {unknown}; use {sorted(known)}")
        values: dict[str, Any] = {}
        for key in ("sender_replies", "global_replies_per_minute"):
            if key in table:
                value = table[key]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ConfigError(f"GATEWAY_CONFIG: limits.{key} must be a whole number >= 0 (0 sends "
                                      "no automatic reply at all)")
                values[key] = value
        if "sender_window_minutes" in table:
            window = table["sender_window_minutes"]
            if not isinstance(window, (int, float)) or isinstance(window, bool) or window <= 0:
                raise ConfigError("GATEWAY_CONFIG: limits.sender_window_minutes must be a number of minutes > 0")
            values["sender_window_minutes"] = float(window)
        if "channels" in table:
            channels = table["channels"]
            if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
                raise ConfigError('GATEWAY_CONFIG: limits.channels must be a list of channel names, e.g. ["sms"]')
            values["channels"] = tuple(channels)
        return cls(**values)  # cheap enough to read per reply; a cache keyed by config kept configs alive


def _recent(session: Session, since: datetime, now: datetime, limit: int, *where: Any) -> int:
    """Replies sent in the window, counted up to ``limit`` only: past it the exact number does
    not matter, and a high limit under heavy load must not make every reply scan the whole window."""
    recent = select(Message.id).where(
        Message.direction == "out", Message.created_at >= since, Message.created_at <= now + _SKEW,  # type: ignore[arg-type]
        Message.status != SUPPRESSED, *where).limit(limit).subquery()
    return int(session.execute(select(func.count()).select_from(recent)).scalar_one())


_SKEW = timedelta(seconds=5)  # rows are stamped by other processes' clocks


def limit_reached(session: Session, limits: ReplyLimits, identity: Identity, now: datetime,
                  no_replies_yet: bool = False, newest_message_id: int | None = None) -> str | None:
    """``"sender"`` or ``"global"`` when an automatic reply to ``identity`` must not be sent now
    (``no_replies_yet``: the identity was created in this transaction, nothing was sent to it;
    ``newest_message_id``: the id of a message this transaction has just stored, which stands for
    the largest message id, see :func:`_global_over`)."""
    channel = CHANNEL_FOR_SCHEME.get(identity.scheme)
    if channel is None or channel not in limits.channels:
        return None
    since = now - timedelta(minutes=limits.sender_window_minutes)
    sender_may_be_over = limits.sender_replies == 0 or not no_replies_yet
    if sender_may_be_over and _over(
            session, limits.sender_replies, (_LOCK_SENDER, identity.id % 2**31),  # type: ignore[operator]
            lambda: _recent(session, since, now, limits.sender_replies, Message.identity_id == identity.id)):  # type: ignore[arg-type]
        return "sender"
    if _global_over(session, limits, now, newest_message_id):
        return "global"
    return None


@dataclass(frozen=True)
class _Headroom:
    """An exact count of the global window, and the largest message id when it was taken."""

    counted_at: datetime
    count: int
    max_id: int


# Per process, by database and channels. Far below the global limit, counting the window for
# every reply would cost a scan of up to ``limit`` rows; instead the last exact count plus every
# message stored since (any direction, any channel, any process: the growth of the largest id) is
# an upper bound, and only when that bound comes near the limit is the window counted again. A
# message this transaction has just stored stands for the largest id without a query: ids are
# drawn in order, so all it can miss are messages other transactions stored since, during this
# one (the next transaction's bound counts them); near the limit the window is counted exactly.
_HEADROOM: dict[tuple[Any, tuple[str, ...]], _Headroom] = {}
_MAX_ID = select(func.max(Message.id))


def _global_over(session: Session, limits: ReplyLimits, now: datetime, newest_id: int | None = None) -> bool:
    limit = limits.global_replies_per_minute
    conn = session.connection()
    key = (conn.engine.url, limits.channels)
    max_id = newest_id if newest_id is not None else int(conn.execute(_MAX_ID).scalar() or 0)
    cached = _HEADROOM.get(key)
    if (cached is not None and cached.counted_at <= now and max_id >= cached.max_id
            and cached.count + (max_id - cached.max_id) < limit - _NEAR):
        return False

    def count() -> int:
        return _recent(session, now - timedelta(minutes=1), now, limit,
                       Message.channel.in_(limits.channels))  # type: ignore[attr-defined]

    found = count()
    if found < limit - _NEAR:
        _HEADROOM[key] = _Headroom(now, found, max_id)
        return False
    return _over(session, limit, (_LOCK_GLOBAL, 0), count)


_LOCK_SENDER, _LOCK_GLOBAL = 7301, 7302
# How close to a limit concurrent transactions could overshoot it (PostgreSQL, READ COMMITTED).
_NEAR = 32


def _over(session: Session, limit: int, lock: tuple[int, int], count: Callable[[], int]) -> bool:
    """Is ``count()`` at ``limit``? Near the limit on PostgreSQL, a transaction-scoped advisory
    lock serialises the deciders, so concurrent gateways cannot overshoot; SQLite already has a
    single writer."""
    found = count()
    if found >= limit:
        return True
    if found >= limit - _NEAR and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": lock[0], "b": lock[1]})
        return count() >= limit
    return False


def record_suppressed(session: Session, *, identity: Identity, text: str, limit: str, now: datetime,
                      language: str | None = None, complaint_id: int | None = None,
                      conversation_id: int | None = None, template: str | None = None) -> Message:
    """Keep the reply we did not send (visible with the complaint), and count it."""
    channel = CHANNEL_FOR_SCHEME[identity.scheme]
    message = Message(
        direction="out", channel=channel, conversation_id=conversation_id, contact_id=identity.contact_id,
        identity_id=identity.id, complaint_id=complaint_id, urn=identity.urn, text=text, language=language,
        status=SUPPRESSED, error_code=f"rate_limit_{limit}", template=template, created_at=now,
        error_message=f"not sent: the {limit} limit on automatic replies was reached",
    )
    session.add(message)
    session.flush()
    REPLIES_SUPPRESSED.labels(channel, limit).inc()
    log.info("automatic %s reply to %s suppressed: %s limit reached", channel, mask_urn(identity.urn), limit)
    return message
