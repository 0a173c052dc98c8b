"""Detection results: the effect size of each feature in its own units (means, shares, ...)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable: results stored before this revision have no effect, and some features
    # (a multivariate test's "*") have none either
    with op.batch_alter_table("detection_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("effect", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("detection_results", schema=None) as batch_op:
        batch_op.drop_column("effect")
