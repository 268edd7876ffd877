"""indexes for the limits on automatic replies (recent outbound messages per identity and per channel)

Revision ID: 0002_faults
Revises: 0001_core
"""
from __future__ import annotations

from alembic import op

revision = "0002_faults"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_identity_created", "messages", ["identity_id", "created_at"])
    op.create_index("ix_messages_channel_direction_created", "messages", ["channel", "direction", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_channel_direction_created", table_name="messages")
    op.drop_index("ix_messages_identity_created", table_name="messages")
