"""hourly sentiment roll-ups per scope key, and the event ids they counted

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_hours",
        sa.Column("scope_key", sa.String(length=300), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("positive", sa.Integer(), nullable=False),
        sa.Column("score_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope_key", "hour"),
    )
    op.create_table(
        "rollup_events",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("counted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_rollup_events_counted_at", "rollup_events", ["counted_at"])


def downgrade() -> None:
    op.drop_index("ix_rollup_events_counted_at", table_name="rollup_events")
    op.drop_table("rollup_events")
    op.drop_table("rollup_hours")
