"""hourly sentiment roll-ups per scope key, the event ids they counted, and the latest items per key

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
        "rollup_minutes",
        sa.Column("scope_key", sa.String(length=300), nullable=False),
        sa.Column("minute", sa.DateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("positive", sa.Integer(), nullable=False),
        sa.Column("score_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope_key", "minute"),
    )
    op.create_table(
        "rollup_events",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("counted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_rollup_events_counted_at", "rollup_events", ["counted_at"])
    op.create_table(
        "recent_items",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_time", sa.DateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sentiment", sa.String(length=12), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=True),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("counted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_recent_items_counted_at", "recent_items", ["counted_at"])
    op.create_table(
        "recent_item_keys",
        sa.Column("scope_key", sa.String(length=300), nullable=False),
        sa.Column("event_time", sa.DateTime(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("scope_key", "event_time", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("recent_item_keys")
    op.drop_index("ix_recent_items_counted_at", table_name="recent_items")
    op.drop_table("recent_items")
    op.drop_index("ix_rollup_events_counted_at", table_name="rollup_events")
    op.drop_table("rollup_events")
    op.drop_table("rollup_minutes")
    op.drop_table("rollup_hours")
