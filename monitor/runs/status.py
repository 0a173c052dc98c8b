"""Each model's status now (ok, warning, drift or no data) and since when.

Read from ``monitor_states``, which every run updates in its own transaction: one query for all
models, whatever the length of their history. Windows with records that arrived after their run
(:mod:`monitor.runs.late`) are summed per monitor, so the status says which a backfill should
recompute.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, select

from monitor.db.listing import StoredModel, stored_models
from monitor.db.schema import detection_runs, estimator_choices, monitor_states, telemetry_batches
from monitor.scheduling.leader import current_leader
from monitor.spec.detector_defaults import merged, tested_kinds, untested_features
from monitor.vocabulary import ModelStatus as Status
from monitor.vocabulary import worst as worst_of

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class MonitorStatus:
    monitor: str
    status: Status
    since: datetime | None
    last_run_id: int | None
    last_run_at: datetime | None
    # records that arrived after their window was computed, in how many windows, and the
    # span of those windows (what `tidewatch backfill --from --to` would recompute)
    late_records: int = 0
    late_windows: int = 0
    late_from: datetime | None = None
    late_to: datetime | None = None
    # input features of a kind the monitor's drift tests leave out ("none", or not chosen)
    untested: list[str] = field(default_factory=list)


Late = tuple[int, int, datetime | None, datetime | None]  # records, windows, from, to


@dataclass(frozen=True)
class ModelStatus:
    model: str
    version: str
    status: Status
    since: datetime | None
    last_run_at: datetime | None
    monitors: list[MonitorStatus] = field(default_factory=list)
    # undeclared features left out of recent telemetry: name -> records (see ignored_features)
    ignored_features: dict[str, int] = field(default_factory=dict)
    # the label-free performance estimator the backtest chose (monitor.runs.estimation), the
    # mean absolute error of its estimated accuracy over how many past windows, and why
    estimator: str | None = None
    estimator_error: float | None = None
    estimator_windows: int = 0
    estimator_reason: str = ""


# what "recent" means for the undeclared features a status names
IGNORED_LOOKBACK = timedelta(hours=24)
IGNORED_BATCHES = 20


def ignored_features(
    session: Connection | Session, version_id: int, now: datetime
) -> dict[str, int]:
    """Undeclared features left out of the version's latest batches that left any out (at most
    IGNORED_BATCHES of them, received within IGNORED_LOOKBACK): name -> records."""
    batch = telemetry_batches.c
    rows = session.scalars(
        select(batch.ignored_features)
        .where(
            batch.model_version_id == version_id,
            batch.ignored_features.is_not(None),
            batch.received_at >= now - IGNORED_LOOKBACK,
        )
        .order_by(batch.received_at.desc())
        .limit(IGNORED_BATCHES)
    )
    total: Counter[str] = Counter()
    for found in rows:
        total.update(found or {})
    return dict(sorted(total.items()))


def late_runs(session: Connection | Session, versions: list[int]) -> dict[tuple[int, str], Late]:
    """(version id, monitor) -> the late records of its runs, the windows and their span."""
    run = detection_runs.c
    rows = session.execute(
        select(
            run.model_version_id,
            run.monitor,
            func.sum(run.late_records),
            func.count(),
            func.min(run.window_start),
            func.max(run.window_end),
        )
        .where(run.model_version_id.in_(versions), run.late_records > 0)
        .group_by(run.model_version_id, run.monitor)
    )
    return {(v, m): (int(n), int(w), start, end) for v, m, n, w, start, end in rows}


def _untested(stored: StoredModel, monitor: str) -> list[str]:
    """Input features this monitor's drift tests leave out; none for a monitor that tests no
    kind at all (a monitor of performance only says so by ``"detectors": {}``)."""
    config = next(m for m in stored.spec["monitors"] if m["name"] == monitor)
    detectors = merged(config.get("detectors") or {})
    if not tested_kinds(detectors):
        return []
    return untested_features(stored.spec["features"], detectors, config.get("features"))


def _combine(
    stored: StoredModel,
    states: dict[str, Row[Any]],
    ignored: dict[str, int],
    late: dict[tuple[int, str], Late],
    choice: Row[Any] | None = None,
) -> ModelStatus:
    """The model's status from its monitors' ``monitor_states`` rows and estimator choice."""
    monitors = []
    for name in stored.monitor_names:
        state = states.get(name)
        found = late.get((stored.version_id, name), (0, 0, None, None))
        untested = _untested(stored, name)
        if state is None:
            monitors.append(
                MonitorStatus(name, Status.NO_DATA, None, None, None, *found, untested=untested)
            )
        else:
            monitors.append(
                MonitorStatus(
                    name,
                    Status(state.status),
                    state.status_since,
                    state.last_run_id,
                    state.last_run_at,
                    *found,
                    untested=untested,
                )
            )
    worst = worst_of(m.status for m in monitors)
    sinces = [m.since for m in monitors if m.status == worst and m.since is not None]
    last = [m.last_run_at for m in monitors if m.last_run_at is not None]
    return ModelStatus(
        model=stored.name,
        version=stored.version,
        status=worst,
        since=min(sinces) if sinces else None,
        last_run_at=max(last) if last else None,
        monitors=monitors,
        ignored_features=ignored,
        estimator=None if choice is None else choice.estimator,
        estimator_error=None if choice is None else choice.backtest_error,
        estimator_windows=0 if choice is None else choice.backtest_windows,
        estimator_reason="" if choice is None else choice.reason,
    )


def model_statuses(session: Connection | Session, name: str | None = None) -> list[ModelStatus]:
    """Every model's status (or the one named), with Core queries: the command line reads it
    on a ``Connection`` without the ORM, the service on its ``Session``."""
    models = [m for m in stored_models(session) if name is None or m.name == name]
    versions = [m.version_id for m in models]
    rows = session.execute(
        select(monitor_states).where(monitor_states.c.model_version_id.in_(versions))
    )
    by_version: dict[int, dict[str, Row[Any]]] = {}
    for row in rows:
        by_version.setdefault(row.model_version_id, {})[row.monitor] = row
    now = datetime.now(UTC)
    late = late_runs(session, versions)
    choices = {
        c.model_version_id: c
        for c in session.execute(
            select(estimator_choices).where(estimator_choices.c.model_version_id.in_(versions))
        )
    }
    return [
        _combine(
            m,
            by_version.get(m.version_id, {}),
            ignored_features(session, m.version_id, now),
            late,
            choices.get(m.version_id),
        )
        for m in models
    ]


def leader(session: Connection | Session) -> tuple[str | None, datetime | None]:
    row = current_leader(session)
    return (None, None) if row is None else (row.holder, row.heartbeat_at)
