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
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from detectors.streaming import StreamingDriftDetector, make_streaming
from monitor.db.models import RegisteredModel
from monitor.db.tables import DetectionRun, MonitorState, TelemetryBatch
from monitor.db.telemetry import load_window
from monitor.observability.service import RUN_SECONDS, RUNS
from monitor.runs.pipeline import ReferenceCache, evaluate, new_run
from monitor.runs.run_log import log_run
from monitor.runs.windows import (
    Window,
    align,
    due_time_spans,
    earliest_ts,
    load_span,
    next_count_window,
    time_key,
    time_window,
)
from monitor.spec.model import MonitorConfig, WindowSpec
from monitor.vocabulary import ModelStatus, RunStatus, WindowKey

log = logging.getLogger("tidewatch.monitoring")
# windows computed per call at most, so one monitor that is far behind cannot starve the rest
MAX_WINDOWS_PER_RUN = 500


def model_status(run_status: str) -> ModelStatus:
    """A run's status as a model status: ok, warning, drift or no_data."""
    return RunStatus(run_status).model_status


def _create_state(
    sessions: sessionmaker[Session], registered: RegisteredModel, monitor: str
) -> None:
    """Create the monitor's state row, in a short transaction of its own.

    Not inside the run's transaction: on SQLite the first write of a transaction takes the
    database's write lock until its commit, and the run computes for seconds after this.
    """
    with sessions() as session:
        if _state_query(session, registered, monitor, lock=False) is not None:
            return
        _insert_state(session, registered, monitor)
        session.commit()


def _state_query(
    session: Session, registered: RegisteredModel, monitor: str, *, lock: bool
) -> MonitorState | None:
    query = select(MonitorState).where(
        MonitorState.model_version_id == registered.version.id,
        MonitorState.monitor == monitor,
    )
    return session.scalar(query.with_for_update() if lock else query)


def _state(session: Session, registered: RegisteredModel, monitor: str) -> MonitorState:
    """The monitor's state row, locked for this transaction on PostgreSQL (created if new)."""
    state = _state_query(session, registered, monitor, lock=True)
    if state is not None:
        return state
    _insert_state(session, registered, monitor)
    state = _state_query(session, registered, monitor, lock=True)
    assert state is not None
    return state


def _insert_state(session: Session, registered: RegisteredModel, monitor: str) -> None:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # a concurrent first run may create it too: whoever loses just locks the winner's row
    session.execute(
        insert(MonitorState)
        .values(
            model_version_id=registered.version.id,
            monitor=monitor,
            stream_seen=0,
            status=ModelStatus.NO_DATA,
            updated_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing()
    )


def _stream(state: MonitorState, monitor: MonitorConfig) -> StreamingDriftDetector | None:
    choice = monitor.performance.streaming if monitor.performance else None
    if choice is None:
        return None
    if state.stream_state is not None and state.stream_method == choice.name:
        try:
            restored = StreamingDriftDetector.from_state(state.stream_state)
        except ValueError as exc:
            # e.g. written under another frouros version: a new detector beats a stuck monitor
            log.warning(
                "monitor %s: saved %s state unusable (%s); starting afresh",
                monitor.name,
                choice.name,
                exc,
            )
        else:
            if restored.params == make_streaming(choice.name, **choice.params).params:
                return restored
    # a new method or new parameters: a new detector learns from here on
    return make_streaming(choice.name, **choice.params)


def _record(
    state: MonitorState,
    run: DetectionRun,
    stream: StreamingDriftDetector | None,
    monitor: MonitorConfig,
) -> None:
    status = model_status(run.status)
    spec = monitor.window
    if spec.by == "time" and spec.type == "tumbling" and run.window_start is not None:
        # the end of the first window with this status (a gap run spans many windows)
        assert spec.seconds is not None
        moment = run.window_start + timedelta(seconds=spec.seconds)
    else:
        moment = run.window_end or run.finished_at or datetime.now(UTC)
    if status != state.status or state.status_since is None:
        state.status, state.status_since = status, moment
    state.last_run_id, state.last_run_at = run.id, run.finished_at
    if stream is not None:
        state.stream_method, state.stream_state = stream.method, stream.state()
        state.stream_seen = stream.n_seen


def window_fingerprint(spec: WindowSpec) -> str:
    """What the cursor depends on: a change means the cursor must be re-based."""
    return f"count:{spec.size}" if spec.by == "count" else f"time:{spec.seconds}"


def _align_up(moment: datetime, seconds: float) -> datetime:
    start = align(moment, seconds)
    return start if start == moment else start + timedelta(seconds=seconds)


def _cursor(
    session: Session,
    registered: RegisteredModel,
    monitor: MonitorConfig,
    state: MonitorState,
    now: datetime,
) -> dict[str, Any] | None:
    """The cursor for the monitor's current window spec.

    After the window was changed (``PUT /monitors``, ``monitors apply``) the old cursor is
    re-based, never moved back: time windows continue at the first aligned window that starts
    where the old windows stopped (or now, after count windows); count windows continue with
    the next record (or the next batch to arrive, after time windows).
    """
    cursor = state.cursor
    wanted = window_fingerprint(monitor.window)
    if cursor is None or cursor.get("window") == wanted:
        return cursor
    spec = monitor.window
    if spec.by == "time":
        assert spec.seconds is not None
        moment = (
            datetime.fromisoformat(cursor["start"])
            if "start" in cursor
            else now - timedelta(seconds=spec.delay_seconds)
        )
        log.info("monitor %s: window changed; continuing on the new windows", monitor.name)
        return {"start": _align_up(moment, spec.seconds).isoformat(), "window": wanted}
    if "batch" in cursor:
        return {"batch": cursor["batch"], "row": cursor["row"], "window": wanted}
    last = session.scalar(
        select(func.max(TelemetryBatch.id)).where(
            TelemetryBatch.model_version_id == registered.version.id
        )
    )
    return {"batch": int(last or 0) + 1, "row": 0, "window": wanted}


def _next_window(
    session: Session,
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cursor: dict[str, Any] | None,
    now: datetime,
) -> Window | None:
    spec = monitor.window
    if spec.by == "count":
        assert spec.size is not None
        return next_count_window(session, registered, cursor, spec.size, now)
    assert spec.seconds is not None
    if cursor is not None:
        start = datetime.fromisoformat(cursor["start"])
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
    _create_state(sessions, registered, monitor.name)
    if monitor.window.type == "sliding":
        with sessions() as session:
            state = _state(session, registered, monitor.name)
            run = new_run(registered, monitor, trigger=trigger)
            current = load_window(session, registered, monitor.window, now=now)
            try:
                evaluate(session, registered, monitor, cache, run, current, device=device)
            except SQLAlchemyError:
                raise
            except Exception as exc:
                state, run = _failed(session, registered, monitor, trigger, None, current, exc)
            _record(state, run, None, monitor)
            session.commit()
            _count(sessions, registered, run)
            return [run]
    runs: list[DetectionRun] = []
    for _ in range(2 * limit):  # windows already stored elsewhere are passed, not computed
        if len(runs) >= limit:
            break
        try:
            computed, progressed = _next_run(
                sessions, registered, monitor, cache, now, device, trigger
            )
        except (IntegrityError, OperationalError) as exc:
            # another runner stored this window in between (its unique key), or SQLite
            # refused our write because another connection wrote since we read: theirs stands
            if isinstance(exc, OperationalError) and "locked" not in str(exc):
                raise
            log.info(
                "%s/%s: another runner is computing this window",
                registered.spec.name,
                monitor.name,
            )
            break
        if computed is not None:
            _count(sessions, registered, computed)
            runs.append(computed)
        if not progressed:
            break
    return runs


def _count(sessions: sessionmaker[Session], registered: RegisteredModel, run: DetectionRun) -> None:
    log_run(sessions, registered, run)
    RUNS.labels(registered.spec.name, run.monitor, run.status).inc()
    if run.finished_at is not None and run.started_at is not None:
        seconds = (run.finished_at - run.started_at).total_seconds()
        RUN_SECONDS.labels(registered.spec.name, run.monitor).observe(max(seconds, 0.0))


def _failed(
    session: Session,
    registered: RegisteredModel,
    monitor: MonitorConfig,
    trigger: str,
    window: Window | None,
    table: pa.Table | None,
    exc: Exception,
) -> tuple[MonitorState, DetectionRun]:
    """Roll back a failed computation and store an ``error`` run that says why instead."""
    where = f"window {window.key}" if window else "sliding window"
    log.exception("%s/%s: %s failed", registered.spec.name, monitor.name, where)
    session.rollback()
    state = _state(session, registered, monitor.name)
    run = new_run(registered, monitor, trigger=trigger, window_key=window.key if window else None)
    run.status, run.message = RunStatus.ERROR, f"failed: {type(exc).__name__}: {exc}"[:2000]
    if window is not None and window.start is not None and window.end is not None:
        run.window_start, run.window_end = window.start, window.end
    elif table is not None and table.num_rows:
        ts = table.column("ts")
        run.window_start, run.window_end = ts[0].as_py(), ts[-1].as_py()
    run.n_current = 0 if table is None else table.num_rows
    run.finished_at = datetime.now(UTC)
    session.add(run)
    session.flush()
    return state, run


def _stored(session: Session, registered: RegisteredModel, monitor: str, key: str) -> bool:
    found = session.scalar(
        select(DetectionRun.id).where(
            DetectionRun.model_version_id == registered.version.id,
            DetectionRun.monitor == monitor,
            DetectionRun.window_key == key,
        )
    )
    return found is not None


def _next_run(
    sessions: sessionmaker[Session],
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cache: ReferenceCache,
    now: datetime,
    device: str,
    trigger: str,
) -> tuple[DetectionRun | None, bool]:
    """Compute the monitor's next due tumbling window in one transaction.

    Returns (the run, whether the cursor moved). A window stored before (by a backfill, say)
    is passed over; a window whose computation fails (not the database) is stored as an
    ``error`` run with the reason, so one bad window cannot block the monitor for good.
    """
    with sessions() as session:
        state = _state(session, registered, monitor.name)
        cursor = _cursor(session, registered, monitor, state, now)
        window = _next_window(session, registered, monitor, cursor, now)
        if window is None:
            if cursor != state.cursor:
                state.cursor = cursor  # keep the re-based cursor
                session.commit()
            else:
                session.rollback()
            return None, False
        next_cursor = {**window.next_cursor, "window": window_fingerprint(monitor.window)}
        if _stored(session, registered, monitor.name, window.key):
            state.cursor = next_cursor
            session.commit()
            return None, True
        stream = _stream(state, monitor)
        run = new_run(registered, monitor, trigger=trigger, window_key=window.key)
        span = None if window.start is None or window.end is None else (window.start, window.end)
        try:
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
        except SQLAlchemyError:
            raise
        except Exception as exc:
            state, run = _failed(session, registered, monitor, trigger, window, window.table, exc)
            stream = None  # the detector's state stays as it was before this window
        state.cursor = next_cursor
        _record(state, run, stream, monitor)
        session.commit()
        return run, True


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


def due_backfill_spans(
    sessions: sessionmaker[Session],
    registered: RegisteredModel,
    monitor: MonitorConfig,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[tuple[datetime, datetime]]:
    """The spans of :func:`backfill_spans` that a backfill may compute at ``now``."""
    delay = timedelta(seconds=monitor.window.delay_seconds)
    spans = [s for s in backfill_spans(monitor, start, end) if s[1] + delay <= now]
    if monitor.window.type != "tumbling":
        return spans
    with sessions() as session:
        state = session.get(MonitorState, (registered.version.id, monitor.name))
    cursor = None if state is None else state.cursor
    if cursor and "start" in cursor and cursor.get("window") == window_fingerprint(monitor.window):
        live = datetime.fromisoformat(cursor["start"])
        spans = [s for s in spans if s[1] <= live]
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
    now: datetime | None = None,
) -> list[DetectionRun]:
    """Recompute a monitor's results over history, replacing earlier runs of the same windows.

    Only windows that are due (closed, plus the delay, by ``now``) are computed, and for a
    tumbling time monitor only those before its live cursor: the windows ahead are the live
    monitor's to compute.

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
        log_run(sessions, registered, run)
        if progress is not None:
            progress(0 if table is None else table.num_rows)

    now = now or datetime.now(UTC)
    if monitor.window.by == "time":
        for span in due_backfill_spans(sessions, registered, monitor, start, end, now):
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
        compute(str(WindowKey.backfill(chunk.column("id")[0].as_py())), chunk, None)
    return runs
