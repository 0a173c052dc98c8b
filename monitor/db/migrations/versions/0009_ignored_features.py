"""Telemetry batches: the undeclared features left out of each, for the model's status

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("telemetry_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ignored_features", sa.JSON(), nullable=True))
    # the status reads the latest batches that left features out; most batches leave none out,
    # so a partial index stays small and the query never scans the whole table
    op.create_index(
        "ix_telemetry_batches_ignored",
        "telemetry_batches",
        ["model_version_id", "received_at"],
        postgresql_where=sa.text("ignored_features IS NOT NULL"),
        sqlite_where=sa.text("ignored_features IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_telemetry_batches_ignored", table_name="telemetry_batches")
    with op.batch_alter_table("telemetry_batches", schema=None) as batch_op:
        batch_op.drop_column("ignored_features")
