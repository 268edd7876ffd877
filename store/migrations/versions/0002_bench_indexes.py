"""indexes for the console and reports at scale (PostgreSQL)

- full-text search over complaint texts: a GIN index on to_tsvector('simple', text). The
  'simple' configuration (no stemming, no stop words) because texts mix Arabic, Darija in
  Latin script, French and English; query it with
  ``to_tsvector('simple', text) @@ plainto_tsquery('simple', :q)``.
- an officer's inbox (administration, open statuses, newest first): a partial index on
  (administration, received_at DESC) over open complaints, so the first page is read in order
  from the index instead of sorting every open complaint of the administration.
- reports over a period (``WHERE received_at >= :from AND received_at < :to``, grouped by
  administration, category, channel or place): received_at, covering the columns the report
  aggregates, so a quarter is read from the index alone (index-only scan).

No-op on SQLite (the embedded default's data stays small; SQLite has no GIN or tsvector).

Revision ID: 0002_bench_indexes
Revises: 0001_core
"""
from __future__ import annotations

from alembic import op

revision = "0002_bench_indexes"
down_revision = "0001_core"
branch_labels = None
depends_on = None

OPEN = "('new', 'assigned', 'in_progress')"
REPORT_COLUMNS = ("administration", "category", "channel", "place", "status", "acknowledged_at", "ack_due_at",
                  "answered_at", "answer_due_at", "overdue", "reopened_count", "satisfaction")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX IF NOT EXISTS ix_complaints_text_fts ON complaints "
               "USING gin (to_tsvector('simple', text))")
    op.execute("CREATE INDEX IF NOT EXISTS ix_complaints_inbox_open ON complaints "
               f"(administration, received_at DESC) WHERE status IN {OPEN}")
    op.execute("CREATE INDEX IF NOT EXISTS ix_complaints_received_at ON complaints (received_at) "
               f"INCLUDE ({', '.join(REPORT_COLUMNS)})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in ("ix_complaints_received_at", "ix_complaints_inbox_open", "ix_complaints_text_fts"):
        op.execute(f"DROP INDEX IF EXISTS {name}")
