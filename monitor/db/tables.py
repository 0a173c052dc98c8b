"""The stored tables, as typed SQLAlchemy 2 models.

Telemetry is stored compactly: one ``telemetry_batches`` row per accepted batch holds all its
columns as one compressed Arrow blob; ``telemetry_records`` keeps only what idempotency and the
join of delayed labels need (record id, batch, timestamp); the row itself is found by id
in the batch blob.

No ``from __future__ import annotations`` here: SQLAlchemy would then evaluate every
``Mapped[...]`` annotation from its text when the module loads, in every command line.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index of only the rows where ``where`` holds (PostgreSQL and SQLite both have them).

    The predicate is kept in ``info["where"]`` and written by the migration that creates the
    index (nothing here creates tables), not given as ``postgresql_where=`` and
    ``sqlite_where=``: SQLAlchemy checks those by importing each dialect, which put the whole
    PostgreSQL dialect into every command line, SQLite ones included (about 25 ms of 0.5 s).
    Alembic does not compare predicates; tests/monitor/test_storage.py checks each migrated
    index against ``info["where"]``.
    """
    return Index(name, *columns, unique=unique, info={"where": where})


class Base(DeclarativeBase):
    pass


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    current_version: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(Text)  # space-separated, e.g. "read ingest:plankton"
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReferenceSet(Base):
    __tablename__ = "reference_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), unique=True
    )
    n_rows: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TelemetryBatch(Base):
    __tablename__ = "telemetry_batches"
    __table_args__ = (
        Index("ix_telemetry_batches_version_last_ts", "model_version_id", "last_ts"),
        partial_index(
            "ix_telemetry_batches_ignored",
            "model_version_id",
            "received_at",
            where="ignored_features IS NOT NULL",
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    last_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    n_records: Mapped[int] = mapped_column(Integer)
    sampling_rate: Mapped[float] = mapped_column(Float, default=1.0)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # undeclared feature name -> records of this batch that carried it (None: none left out)
    ignored_features: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)


class TelemetryRecord(Base):
    __tablename__ = "telemetry_records"
    __table_args__ = (Index("ix_telemetry_records_batch", "batch_id"),)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    record_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("telemetry_batches.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)


class Label(Base):
    __tablename__ = "labels"
    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    record_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    label: Mapped[str | None] = mapped_column(Text, nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class DetectionRun(Base):
    __tablename__ = "detection_runs"
    __table_args__ = (
        Index("ix_detection_runs_version_started", "model_version_id", "started_at"),
        # a tumbling window is computed once: a second scheduler (or a retried job) that
        # computes it again fails on this constraint and its transaction rolls back
        UniqueConstraint(
            "model_version_id", "monitor", "window_key", name="uq_detection_runs_window"
        ),
        # the status lists the runs with late records: few, so a partial index keeps it cheap
        partial_index(
            "ix_detection_runs_late", "model_version_id", "monitor", where="late_records > 0"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    monitor: Mapped[str] = mapped_column(String(128))
    # ok | warning | drift | insufficient_data | no_reference
    status: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    n_reference: Mapped[int] = mapped_column(Integer, default=0)
    n_current: Mapped[int] = mapped_column(Integer, default=0)
    drifted_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    correction: Mapped[str] = mapped_column(String(32), default="bh")
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    # "t:<start>" or "c:<first batch>.<first row>" for tumbling windows, None for sliding runs
    window_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # or schedule, backfill
    runner: Mapped[str | None] = mapped_column(String(256), nullable=True)  # host:pid
    # records of this window that arrived after the run was computed (monitor.runs.late)
    late_records: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class DetectionResult(Base):
    __tablename__ = "detection_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("detection_runs.id", ondelete="CASCADE"), index=True
    )
    feature: Mapped[str] = mapped_column(String(256))
    method: Mapped[str] = mapped_column(String(64))
    statistic: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_adjusted: Mapped[float | None] = mapped_column(Float, nullable=True)
    drift: Mapped[bool] = mapped_column(Boolean)
    n_reference: Mapped[int] = mapped_column(Integer)
    n_current: Mapped[int] = mapped_column(Integer)
    # how much the feature moved in its own units (monitor.runs.effects); None before 0010
    effect: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class QualityResult(Base):
    """One data-quality check of one feature in one detection run's window."""

    __tablename__ = "quality_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("detection_runs.id", ondelete="CASCADE"), index=True
    )
    feature: Mapped[str] = mapped_column(String(256))
    check: Mapped[str] = mapped_column(String(64))  # missing_rate | out_of_range_share | ...
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    reference_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    problem: Mapped[bool] = mapped_column(Boolean)


class PerformanceResult(Base):
    """One realized metric of one run's labelled records, with its threshold when set."""

    __tablename__ = "performance_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("detection_runs.id", ondelete="CASCADE"), index=True
    )
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    problem: Mapped[bool] = mapped_column(Boolean)
    n_labels: Mapped[int] = mapped_column(Integer)


class MonitorState(Base):
    """What a scheduled monitor needs to continue after a restart, and its current status.

    Updated in the transaction that stores the run, so a crash leaves either both or neither.
    """

    __tablename__ = "monitor_states"
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    monitor: Mapped[str] = mapped_column(String(128), primary_key=True)
    # the next tumbling window: {"start": iso} (time) or {"batch": id, "row": n} (count)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    stream_method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stream_state: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    stream_seen: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(32), default="no_data")
    status_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # the last telemetry batch checked for late records (monitor.runs.late)
    late_checked_batch: Mapped[int | None] = mapped_column(Integer, nullable=True)


class EstimatorChoice(Base):
    """The label-free performance estimator a model version's estimates use, as the backtest
    on its labelled history chose it (monitor.runs.estimation), with that backtest's error."""

    __tablename__ = "estimator_choices"
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    estimator: Mapped[str] = mapped_column(String(32))  # cbpe | iw-cbpe
    # mean absolute error of the estimated accuracy over the backtest windows; None without one
    backtest_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    backtest_windows: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SchedulerLeader(Base):
    """Who leads scheduling now (written by the holder of the leader lock, for people to read)."""

    __tablename__ = "scheduler_leaders"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WindowStat(Base):
    """A summary of one run's window: class shares, mean confidence, mean prediction."""

    __tablename__ = "window_stats"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("detection_runs.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(256))  # class_ratio.<class> | confidence_mean | ...
    value: Mapped[float] = mapped_column(Float)


class Alert(Base):
    """One alert of one rule of one model: firing until it resolves, then kept as history."""

    __tablename__ = "alerts"
    __table_args__ = (
        # one alert per rule and model while it fires
        partial_index(
            "uq_alerts_firing", "model_id", "rule", unique=True, where="state = 'firing'"
        ),
        Index("ix_alerts_model_started", "model_id", "started_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # firing | resolved
    summary: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the latest run seen
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    silenced_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AlertEvent(Base):
    """The history of an alert: fired, notified, acknowledged, silenced, resolved."""

    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class OutboxMessage(Base):
    """A notification waiting for (or done with) delivery on one channel: at least once."""

    __tablename__ = "alert_outbox"
    __table_args__ = (Index("ix_alert_outbox_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)  # Notification JSON
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
