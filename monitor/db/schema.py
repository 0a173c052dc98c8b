"""The stored tables, as SQLAlchemy Core ``Table`` objects on one ``MetaData``.

Telemetry is stored compactly: one ``telemetry_batches`` row per accepted batch holds all its
columns as one compressed Arrow blob; ``telemetry_records`` keeps only what idempotency and the
join of delayed labels need (record id, batch, timestamp); the row itself is found by id
in the batch blob.

The ORM classes the service works with (:mod:`monitor.db.tables`) map these tables. They are
declared here, without the ORM, because the command lines that only read (``models list``,
``status``) query them with Core: importing ``sqlalchemy.orm`` and declaring the 18 mapped
classes was about a quarter of such a command's start-up (issue 17). A column is added here
and annotated on its class there; a test checks that the two agree.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


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


metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), unique=True, nullable=False),
    Column("current_version", String(128), nullable=False),
    Column("created_at", UTCDateTime, default=utcnow, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", String(128), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", UTCDateTime, default=utcnow, nullable=False),
    Column("updated_at", UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False),
    UniqueConstraint("model_id", "version"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_hash", String(64), unique=True, nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated, e.g. "read ingest:plankton"
    Column("description", Text, default="", nullable=False),
    Column("created_at", UTCDateTime, default=utcnow, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
)

reference_sets = Table(
    "reference_sets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "model_version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        unique=True,
        nullable=False,
    ),
    Column("n_rows", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, default=utcnow, nullable=False),
)

telemetry_batches = Table(
    "telemetry_batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "model_version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("received_at", UTCDateTime, default=utcnow, nullable=False),
    Column("first_ts", UTCDateTime, nullable=False),
    Column("last_ts", UTCDateTime, nullable=False),
    Column("n_records", Integer, nullable=False),
    Column("sampling_rate", Float, default=1.0, nullable=False),
    Column("data", LargeBinary, nullable=False),
    # undeclared feature name -> records of this batch that carried it (None: none left out)
    Column("ignored_features", JSON, nullable=True),
    Index("ix_telemetry_batches_version_last_ts", "model_version_id", "last_ts"),
    partial_index(
        "ix_telemetry_batches_ignored",
        "model_version_id",
        "received_at",
        where="ignored_features IS NOT NULL",
    ),
)

telemetry_records = Table(
    "telemetry_records",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("record_id", String(200), primary_key=True),
    Column(
        "batch_id", Integer, ForeignKey("telemetry_batches.id", ondelete="CASCADE"), nullable=False
    ),
    Column("ts", UTCDateTime, nullable=False),
    Index("ix_telemetry_records_batch", "batch_id"),
)

labels = Table(
    "labels",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("record_id", String(200), primary_key=True),
    Column("label", Text, nullable=True),
    Column("value", Float, nullable=True),
    Column("payload", JSON, nullable=True),
    Column("received_at", UTCDateTime, default=utcnow, index=True, nullable=False),
)

detection_runs = Table(
    "detection_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "model_version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("monitor", String(128), nullable=False),
    # ok | warning | drift | insufficient_data | no_reference
    Column("status", String(32), nullable=False),
    Column("message", Text, default="", nullable=False),
    Column("started_at", UTCDateTime, default=utcnow, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("window_start", UTCDateTime, nullable=True),
    Column("window_end", UTCDateTime, nullable=True),
    Column("n_reference", Integer, default=0, nullable=False),
    Column("n_current", Integer, default=0, nullable=False),
    Column("drifted_share", Float, nullable=True),
    Column("correction", String(32), default="bh", nullable=False),
    Column("alpha", Float, default=0.05, nullable=False),
    # "t:<start>" or "c:<first batch>.<first row>" for tumbling windows, None for sliding runs
    Column("window_key", String(64), nullable=True),
    Column("trigger", String(16), default="manual", nullable=False),  # or schedule, backfill
    Column("runner", String(256), nullable=True),  # host:pid
    # records of this window that arrived after the run was computed (monitor.runs.late)
    Column("late_records", Integer, default=0, server_default="0", nullable=False),
    Index("ix_detection_runs_version_started", "model_version_id", "started_at"),
    # a tumbling window is computed once: a second scheduler (or a retried job) that
    # computes it again fails on this constraint and its transaction rolls back
    UniqueConstraint("model_version_id", "monitor", "window_key", name="uq_detection_runs_window"),
    # the status lists the runs with late records: few, so a partial index keeps it cheap
    partial_index(
        "ix_detection_runs_late", "model_version_id", "monitor", where="late_records > 0"
    ),
)

detection_results = Table(
    "detection_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("detection_runs.id", ondelete="CASCADE"),
        index=True,
        nullable=False,
    ),
    Column("feature", String(256), nullable=False),
    Column("method", String(64), nullable=False),
    Column("statistic", Float, nullable=True),
    Column("p_value", Float, nullable=True),
    Column("p_adjusted", Float, nullable=True),
    Column("drift", Boolean, nullable=False),
    Column("n_reference", Integer, nullable=False),
    Column("n_current", Integer, nullable=False),
    # how much the feature moved in its own units (monitor.runs.effects); None before 0010
    Column("effect", JSON, nullable=True),
)

quality_results = Table(
    "quality_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("detection_runs.id", ondelete="CASCADE"),
        index=True,
        nullable=False,
    ),
    Column("feature", String(256), nullable=False),
    Column("check", String(64), nullable=False),  # missing_rate | out_of_range_share | ...
    Column("value", Float, nullable=True),
    Column("reference_value", Float, nullable=True),
    Column("problem", Boolean, nullable=False),
)

performance_results = Table(
    "performance_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("detection_runs.id", ondelete="CASCADE"),
        index=True,
        nullable=False,
    ),
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("problem", Boolean, nullable=False),
    Column("n_labels", Integer, nullable=False),
)

monitor_states = Table(
    "monitor_states",
    metadata,
    Column(
        "model_version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("monitor", String(128), primary_key=True),
    # the next tumbling window: {"start": iso} (time) or {"batch": id, "row": n} (count)
    Column("cursor", JSON, nullable=True),
    Column("stream_method", String(32), nullable=True),
    Column("stream_state", LargeBinary, nullable=True),
    Column("stream_seen", Integer, default=0, nullable=False),
    Column("status", String(32), default="no_data", nullable=False),
    Column("status_since", UTCDateTime, nullable=True),
    Column("last_run_id", Integer, nullable=True),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False),
    # the last telemetry batch checked for late records (monitor.runs.late)
    Column("late_checked_batch", Integer, nullable=True),
)

estimator_choices = Table(
    "estimator_choices",
    metadata,
    Column(
        "model_version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("estimator", String(32), nullable=False),  # cbpe | iw-cbpe
    # mean absolute error of the estimated accuracy over the backtest windows; None without one
    Column("backtest_error", Float, nullable=True),
    Column("backtest_windows", Integer, default=0, nullable=False),
    Column("reason", Text, default="", nullable=False),
    Column("updated_at", UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False),
)

scheduler_leaders = Table(
    "scheduler_leaders",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("acquired_at", UTCDateTime, default=utcnow, nullable=False),
    Column("heartbeat_at", UTCDateTime, default=utcnow, nullable=False),
)

window_stats = Table(
    "window_stats",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("detection_runs.id", ondelete="CASCADE"),
        index=True,
        nullable=False,
    ),
    Column("name", String(256), nullable=False),  # class_ratio.<class> | confidence_mean | ...
    Column("value", Float, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", String(128), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("summary", Text, default="", nullable=False),
    Column("started_at", UTCDateTime, default=utcnow, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("last_notified_at", UTCDateTime, nullable=True),
    Column("run_id", Integer, nullable=True),  # the latest run seen
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("acknowledged_by", String(256), nullable=True),
    Column("silenced_until", UTCDateTime, nullable=True),
    # one alert per rule and model while it fires
    partial_index("uq_alerts_firing", "model_id", "rule", unique=True, where="state = 'firing'"),
    Index("ix_alerts_model_started", "model_id", "started_at"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "alert_id", Integer, ForeignKey("alerts.id", ondelete="CASCADE"), index=True, nullable=False
    ),
    Column("at", UTCDateTime, default=utcnow, nullable=False),
    Column("event", String(32), nullable=False),
    Column("detail", Text, default="", nullable=False),
)

alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "alert_id", Integer, ForeignKey("alerts.id", ondelete="CASCADE"), index=True, nullable=False
    ),
    Column("channel", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # Notification JSON
    Column("state", String(16), default="pending", nullable=False),  # pending|sent|failed
    Column("attempts", Integer, default=0, nullable=False),
    Column("next_attempt_at", UTCDateTime, default=utcnow, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, default=utcnow, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Index("ix_alert_outbox_due", "state", "next_attempt_at"),
)
