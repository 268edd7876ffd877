"""the recent-outbound index leads with the direction, not the channel

``ix_messages_channel_direction_created`` (channel, direction, created_at) also matched the
lookup of a message by provider id (channel, provider_message_id), which the unique index
answers in a few page reads. PostgreSQL plans a prepared statement once (a generic plan) and
keeps it; planned while the table was nearly empty, both indexes cost the same, and when it
took this one every webhook's duplicate check read every stored message of its channel (bench:
4.7 ms and 5,300 pages a call, the largest share of the database's time). The same recent
outbound messages (the global limit on automatic replies) are found by (direction, created_at),
which cannot serve that lookup.

The new index is built inside the migration's transaction, blocking writes to ``messages`` while
it builds: on a large table, run this in a quiet hour, or first create it by hand with
``CREATE INDEX CONCURRENTLY ix_messages_direction_created ON messages (direction, created_at)``
(the migration then finds it and goes on).

Revision ID: 0004_messages_direction_index
Revises: 0003_merge
"""
from __future__ import annotations

from alembic import op

revision = "0004_messages_direction_index"
down_revision = "0003_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_direction_created", "messages", ["direction", "created_at"], if_not_exists=True)
    op.drop_index("ix_messages_channel_direction_created", table_name="messages", if_exists=True)


def downgrade() -> None:
    op.create_index("ix_messages_channel_direction_created", "messages", ["channel", "direction", "created_at"])
    op.drop_index("ix_messages_direction_created", table_name="messages")
