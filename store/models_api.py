"""Tables of the work side (REST API and console): the authentication audit trail, which also
feeds login throttling, and stored answers of idempotent API requests."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.models import BigID
from store.types import UTCDateTime, utcnow


class AuthEvent(SQLModel, table=True):
    """Who logged in, failed, was throttled, created or revoked a token, managed a user.

    ``username`` is the account concerned (lower-cased as typed for failed logins); ``actor``
    is who did it (an admin creating a user, the user revoking their own token).
    """

    __tablename__ = "auth_events"
    __table_args__ = (
        Index("ix_auth_events_type_username_at", "type", "username", "at"),
        Index("ix_auth_events_type_ip_at", "type", "ip", "at"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    type: str = Field(max_length=32)
    username: str | None = Field(default=None, max_length=150)
    actor: str | None = Field(default=None, max_length=160)
    ip: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class IdempotentRequest(SQLModel, table=True):
    """The answer given to a request carrying an ``Idempotency-Key``, replayed on a retry."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_api_idempotency_user_key"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigID)
    user_id: int = Field(sa_type=BigID)
    key: str = Field(max_length=255)
    scope: str = Field(max_length=255)  # method and path the key was first used with
    status: int = 200
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
