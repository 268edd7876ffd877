"""Merge the per-area branches of the founding session into one head.

Revision ID: 0003_merge
Revises: 0002_api, 0002_bench_indexes, 0002_email, 0002_faults, 0002_ivr, 0002_telegram
"""
from __future__ import annotations

revision = "0003_merge"
down_revision = ("0002_api", "0002_bench_indexes", "0002_email", "0002_faults", "0002_ivr", "0002_telegram")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
