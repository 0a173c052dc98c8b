"""scheduled monitors: tumbling-window keys, performance results, monitor state, leader

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.db.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("detection_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("window_key", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("trigger", sa.String(length=16), nullable=False, server_default="manual")
        )
        batch_op.add_column(sa.Column("runner", sa.String(length=256), nullable=True))
        batch_op.create_unique_constraint(
            "uq_detection_runs_window", ["model_version_id", "monitor", "window_key"]
        )
    op.create_table(
        "performance_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("problem", sa.Boolean(), nullable=False),
        sa.Column("n_labels", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["detection_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("performance_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_performance_results_run_id"), ["run_id"])
    op.create_table(
        "monitor_states",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("monitor", sa.String(length=128), nullable=False),
        sa.Column("cursor", sa.JSON(), nullable=True),
        sa.Column("stream_method", sa.String(length=32), nullable=True),
        sa.Column("stream_state", sa.LargeBinary(), nullable=True),
        sa.Column("stream_seen", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_since", UTCDateTime(), nullable=True),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.Column("last_run_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_version_id", "monitor"),
    )
    op.create_table(
        "scheduler_leaders",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leaders")
    op.drop_table("monitor_states")
    with op.batch_alter_table("performance_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_performance_results_run_id"))
    op.drop_table("performance_results")
    with op.batch_alter_table("detection_runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_detection_runs_window", type_="unique")
        batch_op.drop_column("runner")
        batch_op.drop_column("trigger")
        batch_op.drop_column("window_key")
