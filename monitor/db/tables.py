"""The stored tables as typed SQLAlchemy 2 ORM classes, mapped onto :mod:`monitor.db.schema`.

Each class maps the Core table of the same name (``__table__``); its annotations give the
attributes their types and declare no column (the table does). What only reads and is not
the service (``models list``, ``status``) uses the Core tables and never imports this module.

No ``from __future__ import annotations`` here: SQLAlchemy would then evaluate every
``Mapped[...]`` annotation from its text when the module loads.
"""

from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped

from monitor.db import schema

# where the migrations (and older code) import them from
from monitor.db.schema import UTCDateTime as UTCDateTime
from monitor.db.schema import partial_index as partial_index
from monitor.db.schema import utcnow as utcnow


class Base(DeclarativeBase):
    metadata = schema.metadata


class Model(Base):
    __table__ = schema.models
    id: Mapped[int]
    name: Mapped[str]
    current_version: Mapped[str]
    created_at: Mapped[datetime]


class ModelVersion(Base):
    __table__ = schema.model_versions
    id: Mapped[int]
    model_id: Mapped[int]
    version: Mapped[str]
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiKey(Base):
    __table__ = schema.api_keys
    id: Mapped[int]
    key_hash: Mapped[str]
    prefix: Mapped[str]
    scopes: Mapped[str]
    description: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class ReferenceSet(Base):
    __table__ = schema.reference_sets
    id: Mapped[int]
    model_version_id: Mapped[int]
    n_rows: Mapped[int]
    sha256: Mapped[str]
    data: Mapped[bytes]
    created_at: Mapped[datetime]


class TelemetryBatch(Base):
    __table__ = schema.telemetry_batches
    id: Mapped[int]
    model_version_id: Mapped[int]
    received_at: Mapped[datetime]
    first_ts: Mapped[datetime]
    last_ts: Mapped[datetime]
    n_records: Mapped[int]
    sampling_rate: Mapped[float]
    data: Mapped[bytes]
    ignored_features: Mapped[dict[str, int] | None]


class TelemetryRecord(Base):
    __table__ = schema.telemetry_records
    model_id: Mapped[int]
    record_id: Mapped[str]
    batch_id: Mapped[int]
    ts: Mapped[datetime]


class Label(Base):
    __table__ = schema.labels
    model_id: Mapped[int]
    record_id: Mapped[str]
    label: Mapped[str | None]
    value: Mapped[float | None]
    payload: Mapped[dict[str, Any] | None]
    received_at: Mapped[datetime]


class DetectionRun(Base):
    __table__ = schema.detection_runs
    id: Mapped[int]
    model_version_id: Mapped[int]
    monitor: Mapped[str]
    status: Mapped[str]
    message: Mapped[str]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    n_reference: Mapped[int]
    n_current: Mapped[int]
    drifted_share: Mapped[float | None]
    correction: Mapped[str]
    alpha: Mapped[float]
    window_key: Mapped[str | None]
    trigger: Mapped[str]
    runner: Mapped[str | None]
    late_records: Mapped[int]


class DetectionResult(Base):
    __table__ = schema.detection_results
    id: Mapped[int]
    run_id: Mapped[int]
    feature: Mapped[str]
    method: Mapped[str]
    statistic: Mapped[float | None]
    p_value: Mapped[float | None]
    p_adjusted: Mapped[float | None]
    drift: Mapped[bool]
    n_reference: Mapped[int]
    n_current: Mapped[int]
    effect: Mapped[dict[str, Any] | None]


class QualityResult(Base):
    """One data-quality check of one feature in one detection run's window."""

    __table__ = schema.quality_results
    id: Mapped[int]
    run_id: Mapped[int]
    feature: Mapped[str]
    check: Mapped[str]
    value: Mapped[float | None]
    reference_value: Mapped[float | None]
    problem: Mapped[bool]


class PerformanceResult(Base):
    """One realized metric of one run's labelled records, with its threshold when set."""

    __table__ = schema.performance_results
    id: Mapped[int]
    run_id: Mapped[int]
    metric: Mapped[str]
    value: Mapped[float | None]
    threshold: Mapped[float | None]
    problem: Mapped[bool]
    n_labels: Mapped[int]


class MonitorState(Base):
    """What a scheduled monitor needs to continue after a restart, and its current status.

    Updated in the transaction that stores the run, so a crash leaves either both or neither."""

    __table__ = schema.monitor_states
    model_version_id: Mapped[int]
    monitor: Mapped[str]
    cursor: Mapped[dict[str, Any] | None]
    stream_method: Mapped[str | None]
    stream_state: Mapped[bytes | None]
    stream_seen: Mapped[int]
    status: Mapped[str]
    status_since: Mapped[datetime | None]
    last_run_id: Mapped[int | None]
    last_run_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    late_checked_batch: Mapped[int | None]


class EstimatorChoice(Base):
    """The label-free performance estimator a model version's estimates use, as the backtest
    on its labelled history chose it (monitor.runs.estimation), with that backtest's error."""

    __table__ = schema.estimator_choices
    model_version_id: Mapped[int]
    estimator: Mapped[str]
    backtest_error: Mapped[float | None]
    backtest_windows: Mapped[int]
    reason: Mapped[str]
    updated_at: Mapped[datetime]


class SchedulerLeader(Base):
    """Who leads scheduling now (written by the holder of the leader lock, for people to read)."""

    __table__ = schema.scheduler_leaders
    name: Mapped[str]
    holder: Mapped[str]
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


class WindowStat(Base):
    """A summary of one run's window: class shares, mean confidence, mean prediction."""

    __table__ = schema.window_stats
    id: Mapped[int]
    run_id: Mapped[int]
    name: Mapped[str]
    value: Mapped[float]


class Alert(Base):
    """One alert of one rule of one model: firing until it resolves, then kept as history."""

    __table__ = schema.alerts
    id: Mapped[int]
    model_id: Mapped[int]
    version: Mapped[str]
    rule: Mapped[str]
    kind: Mapped[str]
    severity: Mapped[str]
    state: Mapped[str]
    summary: Mapped[str]
    started_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]
    run_id: Mapped[int | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None]
    silenced_until: Mapped[datetime | None]


class AlertEvent(Base):
    """The history of an alert: fired, notified, acknowledged, silenced, resolved."""

    __table__ = schema.alert_events
    id: Mapped[int]
    alert_id: Mapped[int]
    at: Mapped[datetime]
    event: Mapped[str]
    detail: Mapped[str]


class OutboxMessage(Base):
    """A notification waiting for (or done with) delivery on one channel: at least once."""

    __table__ = schema.alert_outbox
    id: Mapped[int]
    alert_id: Mapped[int]
    channel: Mapped[str]
    payload: Mapped[str]
    state: Mapped[str]
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
