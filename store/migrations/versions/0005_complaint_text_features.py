"""complaints keep their text's duplicate-detection features

``complaints.text_features`` (nullable): the hashed words and trigrams of the complaint's text
(``conversations.text_features``), written with each new complaint. Existing complaints keep
NULL: while they are candidates (open, within the window) their features are computed from
their text, as before, so nothing needs filling in.

Revision ID: 0005_complaint_text_features
Revises: 0004_messages_direction_index
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_complaint_text_features"
down_revision = "0004_messages_direction_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("complaints", sa.Column("text_features", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("complaints", "text_features")
