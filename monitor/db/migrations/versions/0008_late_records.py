"""Detection runs: records of the window that arrived after the run (late), and how far each
monitor checked for them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("detection_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("late_records", sa.Integer(), server_default="0", nullable=False)
        )
    # the status lists the runs with late records: few, so a partial index stays small
    op.create_index(
        "ix_detection_runs_late",
        "detection_runs",
        ["model_version_id", "monitor"],
        postgresql_where=sa.text("late_records > 0"),
        sqlite_where=sa.text("late_records > 0"),
    )
    with op.batch_alter_table("monitor_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late_checked_batch", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_states", schema=None) as batch_op:
        batch_op.drop_column("late_checked_batch")
    op.drop_index("ix_detection_runs_late", table_name="detection_runs")
    with op.batch_alter_table("detection_runs", schema=None) as batch_op:
        batch_op.drop_column("late_records")
