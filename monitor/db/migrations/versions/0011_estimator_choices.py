"""Label-free performance estimation: the estimator each model version uses and its backtest

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.db.tables import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "estimator_choices",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("estimator", sa.String(length=32), nullable=False),
        sa.Column("backtest_error", sa.Float(), nullable=True),
        sa.Column("backtest_windows", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_version_id"),
    )


def downgrade() -> None:
    op.drop_table("estimator_choices")
