"""login throttle: failed logins per account and per address, with growing delays; audit rows by actor

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_allowed_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_audit_log_actor_action", "audit_log", ["actor", "action"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor_action", "audit_log")
    op.drop_table("login_throttle")
