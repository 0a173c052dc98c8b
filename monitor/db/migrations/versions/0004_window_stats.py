"""window summaries of detection runs (class mix, confidence)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "window_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["detection_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("window_stats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_window_stats_run_id"), ["run_id"])


def downgrade() -> None:
    with op.batch_alter_table("window_stats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_window_stats_run_id"))
    op.drop_table("window_stats")
