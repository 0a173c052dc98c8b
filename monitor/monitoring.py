"""Running monitors: the due windows of a scheduled monitor, manual runs and backfills.

Each tumbling window is computed in its own transaction that also moves the monitor's cursor,
saves its streaming detector and updates its status (``monitor_states``), so a process killed
between two windows continues at the next one after a restart, with the detector exactly as it
was. On PostgreSQL the state row is locked (``SELECT ... FOR UPDATE``) for the transaction, so
two processes never compute one window; the unique window key is a second guard on every
backend (a duplicate rolls back instead of storing twice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from detectors.streaming import StreamingDriftDetector, make_streaming
from monitor.db.models import RegisteredModel
from monitor.db.tables import DetectionRun, MonitorState
from monitor.db.telemetry import load_window
from monitor.pipeline import ReferenceCache, evaluate, new_run
from monitor.schema import MonitorConfig
from monitor.windows import (
    Window,
    align,
    due_time_spans,
    earliest_ts,
    load_span,
    next_count_window,
    time_key,
    time_window,
)

log = logging.getLogger("tidewatch.monitoring")
# windows computed per call at most, so one monitor that is far behind cannot starve the rest
MAX_WINDOWS_PER_RUN = 500
NO_DATA_STATUSES = ("insufficient_data", "no_reference")


def model_status(run_status: str) -> str:
    """A run's status as a model status: ok, warning, drift or no_data."""
    return "no_data" if run_status in NO_DATA_STATUSES else run_status


def _state(session: Session, registered: RegisteredModel, monitor: str) -> MonitorState:
    """The monitor's state row, locked for this transaction on PostgreSQL (created if new)."""
    query = (
        select(MonitorState)
        .where(
            MonitorState.model_version_id == registered.version.id,
            MonitorState.monitor == monitor,
        )
        .with_for_update()
    )
    state = session.scalar(query)
    if state is not None:
        return state
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # a concurrent first run may create it too: whoever loses just locks the winner's row
    session.execute(
        insert(MonitorState)
        .values(
            model_version_id=registered.version.id,
            monitor=monitor,
            stream_seen=0,
            status="no_data",
            updated_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing()
    )
    state = session.scalar(query)
    assert state is not None
    return state


def _stream(state: MonitorState, monitor: MonitorConfig) -> StreamingDriftDetector | None:
    choice = monitor.performance.streaming if monitor.performance else None
    if choice is None:
        return None
    if state.stream_state is not None and state.stream_method == choice.name:
        restored = StreamingDriftDetector.from_state(state.stream_state)
        if restored.params == make_streaming(choice.name, **choice.params).params:
            return restored
    # a new method or new parameters: a new detector learns from here on
    return make_streaming(choice.name, **choice.params)


def _record(state: MonitorState, run: DetectionRun, stream: StreamingDriftDetector | None) -> None:
    status = model_status(run.status)
    moment = run.window_end or run.finished_at or datetime.now(UTC)
    if status != state.status or state.status_since is None:
        state.status, state.status_since = status, moment
    state.last_run_id, state.last_run_at = run.id, run.finished_at
    if stream is not None:
        state.stream_method, state.stream_state = stream.method, stream.state()
        state.stream_seen = stream.n_seen


def _next_window(
    session: Session,
    registered: RegisteredModel,
    monitor: MonitorConfig,
    state: MonitorState,
    now: datetime,
) -> Window | None:
    spec = monitor.window
    if spec.by == "count":
        assert spec.size is not None
        return next_count_window(session, registered, state.cursor, spec.size, now)
    assert spec.seconds is not None
    if state.cursor is not None:
        start = datetime.fromisoformat(state.cursor["start"])
    else:
        first = earliest_ts(session, registered)
        if first is None:
            return None  # no telemetry yet: nothing to compute
        start = align(first, spec.seconds)
    spans = due_time_spans(start, spec, now, 1)
    if not spans:
        return None
    return time_window(session, registered, *spans[0], spec, now)


def run_due(
    sessions: sessionmaker[Session],
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cache: ReferenceCache,
    *,
    now: datetime | None = None,
    device: str = "auto",
    trigger: str = "schedule",
    limit: int = MAX_WINDOWS_PER_RUN,
) -> list[DetectionRun]:
    """Compute what is due for one monitor at ``now``: its sliding window once, or every
    tumbling window that has closed since the last one, oldest first."""
    now = now or datetime.now(UTC)
    if monitor.window.type == "sliding":
        with sessions() as session:
            state = _state(session, registered, monitor.name)
            run = new_run(registered, monitor, trigger=trigger)
            current = load_window(session, registered, monitor.window, now=now)
            evaluate(session, registered, monitor, cache, run, current, device=device)
            _record(state, run, None)
            session.commit()
            return [run]
    runs: list[DetectionRun] = []
    while len(runs) < limit:
        try:
            computed = _next_run(sessions, registered, monitor, cache, now, device, trigger)
        except (IntegrityError, OperationalError) as exc:
            # another runner stored this window in between (its unique key), or SQLite
            # refused our write because another connection wrote since we read: theirs stands
            if isinstance(exc, OperationalError) and "locked" not in str(exc):
                raise
            log.info(
                "%s/%s: another runner is computing this window", registered.spec.name, monitor.name
            )
            break
        if computed is None:
            break
        runs.append(computed)
    return runs


def _next_run(
    sessions: sessionmaker[Session],
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cache: ReferenceCache,
    now: datetime,
    device: str,
    trigger: str,
) -> DetectionRun | None:
    """Compute the monitor's next due tumbling window in one transaction; None if none is due."""
    with sessions() as session:
        state = _state(session, registered, monitor.name)
        window = _next_window(session, registered, monitor, state, now)
        if window is None:
            session.rollback()
            return None
        stream = _stream(state, monitor)
        run = new_run(registered, monitor, trigger=trigger, window_key=window.key)
        span = None if window.start is None or window.end is None else (window.start, window.end)
        evaluate(
            session,
            registered,
            monitor,
            cache,
            run,
            window.table,
            device=device,
            stream=stream,
            span=span,
        )
        state.cursor = window.next_cursor
        _record(state, run, stream)
        session.commit()
        return run


def backfill_spans(
    monitor: MonitorConfig, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The spans a time-window backfill computes: aligned windows overlapping [start, end)."""
    assert monitor.window.seconds is not None
    length = timedelta(seconds=monitor.window.seconds)
    spans, first = [], align(start, monitor.window.seconds)
    while first < end:
        spans.append((first, first + length))
        first += length
    return spans


def backfill(
    sessions: sessionmaker[Session],
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cache: ReferenceCache,
    start: datetime,
    end: datetime,
    *,
    device: str = "auto",
    progress: Callable[[int], Any] | None = None,
) -> list[DetectionRun]:
    """Recompute a monitor's results over history, replacing earlier runs of the same windows.

    Time windows (tumbling or sliding) are recomputed as aligned ``seconds``-long spans; count
    windows as consecutive runs of ``size`` records in prediction-time order. A streaming
    detector starts fresh for the backfill; the live monitor's cursor, detector and status are
    left alone. ``progress`` is called with the number of records of each window done.
    Count-window backfills are keyed by their first record: a second backfill of the same
    range replaces the first, and the live runs (keyed by arrival position) stay.
    """
    if start >= end:
        raise ValueError("the backfill range is empty: --from must be before --to")
    choice = monitor.performance.streaming if monitor.performance else None
    stream = make_streaming(choice.name, **choice.params) if choice else None
    runs: list[DetectionRun] = []

    def compute(key: str, table: pa.Table | None, span: tuple[datetime, datetime] | None) -> None:
        with sessions() as session:
            session.execute(
                delete(DetectionRun).where(
                    DetectionRun.model_version_id == registered.version.id,
                    DetectionRun.monitor == monitor.name,
                    DetectionRun.window_key == key,
                )
            )
            run = new_run(registered, monitor, trigger="backfill", window_key=key)
            evaluate(
                session,
                registered,
                monitor,
                cache,
                run,
                table,
                device=device,
                stream=stream,
                span=span,
            )
            session.commit()
            runs.append(run)
        if progress is not None:
            progress(0 if table is None else table.num_rows)

    if monitor.window.by == "time":
        for span in backfill_spans(monitor, start, end):
            with sessions() as session:
                table = load_span(session, registered, *span)
            compute(time_key(span[0]), table, span)
        return runs
    assert monitor.window.size is not None
    with sessions() as session:
        everything = load_span(session, registered, start, end)
    if everything is None:
        return runs
    size = monitor.window.size
    for offset in range(0, everything.num_rows - size + 1, size):
        chunk = everything.slice(offset, size)
        compute(f"b:{chunk.column('id')[0].as_py()}", chunk, None)
    return runs
