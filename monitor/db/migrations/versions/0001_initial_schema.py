"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 19:04:11.546909
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.db.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("current_version", sa.String(length=128), nullable=False),
        sa.Column("created_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "labels",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=200), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("received_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "record_id"),
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_labels_received_at"), ["received_at"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "version"),
    )
    op.create_table(
        "detection_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("monitor", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("started_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_start", monitor.db.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_end", monitor.db.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("n_current", sa.Integer(), nullable=False),
        sa.Column("drifted_share", sa.Float(), nullable=True),
        sa.Column("correction", sa.String(length=32), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("detection_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_detection_runs_version_started", ["model_version_id", "started_at"], unique=False
        )

    op.create_table(
        "reference_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_version_id"),
    )
    op.create_table(
        "telemetry_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("received_at", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("first_ts", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_ts", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("n_records", sa.Integer(), nullable=False),
        sa.Column("sampling_rate", sa.Float(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("telemetry_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_telemetry_batches_version_last_ts", ["model_version_id", "last_ts"], unique=False
        )

    op.create_table(
        "detection_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=256), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("statistic", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("p_adjusted", sa.Float(), nullable=True),
        sa.Column("drift", sa.Boolean(), nullable=False),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("n_current", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["detection_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("detection_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_detection_results_run_id"), ["run_id"], unique=False)

    op.create_table(
        "telemetry_records",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=200), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("ts", monitor.db.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["telemetry_batches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "record_id"),
    )
    with op.batch_alter_table("telemetry_records", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_records_batch", ["batch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("telemetry_records", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_records_batch")

    op.drop_table("telemetry_records")
    with op.batch_alter_table("detection_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_detection_results_run_id"))

    op.drop_table("detection_results")
    with op.batch_alter_table("telemetry_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_batches_version_last_ts")

    op.drop_table("telemetry_batches")
    op.drop_table("reference_sets")
    with op.batch_alter_table("detection_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_detection_runs_version_started")

    op.drop_table("detection_runs")
    op.drop_table("model_versions")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_labels_received_at"))

    op.drop_table("labels")
    op.drop_table("models")
    op.drop_table("api_keys")
