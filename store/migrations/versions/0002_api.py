"""API and console: authentication audit trail (and throttling), idempotent requests

Revision ID: 0002_api
Revises: 0001_core
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.types

revision = "0002_api"
down_revision = "0001_core"
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "auth_events",
        sa.Column("id", BigID, nullable=False),
        sa.Column("at", store.types.UTCDateTime(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=150), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=True),
        sa.Column("ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_auth_events_type_username_at", "auth_events", ["type", "username", "at"])
    op.create_index("ix_auth_events_type_ip_at", "auth_events", ["type", "ip", "at"])
    op.create_table(
        "api_idempotency",
        sa.Column("id", BigID, nullable=False),
        sa.Column("user_id", BigID, nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "key", name="uq_api_idempotency_user_key"),
    )
    op.create_index("ix_api_idempotency_created_at", "api_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_idempotency_created_at", table_name="api_idempotency")
    op.drop_table("api_idempotency")
    op.drop_index("ix_auth_events_type_ip_at", table_name="auth_events")
    op.drop_index("ix_auth_events_type_username_at", table_name="auth_events")
    op.drop_table("auth_events")
