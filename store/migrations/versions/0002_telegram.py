"""telegram: handled updates and the media download queue

Revision ID: 0002_telegram
Revises: 0001_core
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.types

revision = "0002_telegram"
down_revision = "0001_core"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "telegram_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("received_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("update_id"),
    )
    op.create_table(
        "telegram_files",
        sa.Column("id", _ID, nullable=False),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("conversation_id", _ID, nullable=True),
        sa.Column("complaint_id", _ID, nullable=True),
        sa.Column("file_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("file_unique_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("locked_until", store.types.UTCDateTime(), nullable=True),
        sa.Column("stored_file_id", _ID, nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("telegram_files", schema=None) as batch_op:
        batch_op.create_index("ix_telegram_files_message_id", ["message_id"], unique=False)
        batch_op.create_index("ix_telegram_files_complaint_id", ["complaint_id"], unique=False)
        batch_op.create_index("ix_telegram_files_status_next", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("telegram_files", schema=None) as batch_op:
        batch_op.drop_index("ix_telegram_files_status_next")
        batch_op.drop_index("ix_telegram_files_complaint_id")
        batch_op.drop_index("ix_telegram_files_message_id")
    op.drop_table("telegram_files")
    op.drop_table("telegram_updates")
