"""Tumbling windows: which ones are due, and the records each one holds.

Time windows are spans of *prediction* time (the records' ``ts``), ``seconds`` long and aligned
on the Unix epoch, so every process agrees on their edges: ``[k * seconds, (k + 1) * seconds)``,
start included, end excluded. A window is due ``delay_seconds`` after its end.

Count windows are runs of ``size`` records in arrival order: batches by id, rows in the order
they were posted. Their cursor is the next record not yet used, ``(batch id, row)``. Only
batches received ``SETTLE`` ago or earlier are read: a batch whose id was allocated before a
later batch's may commit after it, and a cursor that had already moved past its id would skip
it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.data.layout import TS_TYPE, from_bytes
from monitor.db.models import RegisteredModel
from monitor.db.tables import DetectionRun, TelemetryBatch
from monitor.spec.model import WindowSpec
from monitor.vocabulary import WindowKey

SETTLE = timedelta(seconds=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """One tumbling window: its key (unique per monitor), span and records."""

    key: str
    start: datetime | None  # time windows: the span; count windows: None
    end: datetime | None
    table: pa.Table | None  # None when no record fell in the window
    next_cursor: dict[str, Any]


def align(moment: datetime, seconds: float) -> datetime:
    """The start of the time window that holds ``moment``.

    >>> align(datetime(2026, 1, 1, 10, 7, 30, tzinfo=UTC), 300).isoformat()
    '2026-01-01T10:05:00+00:00'
    """
    offset = (moment - EPOCH).total_seconds()
    return EPOCH + timedelta(seconds=math.floor(offset / seconds) * seconds)


def time_key(start: datetime) -> str:
    return str(WindowKey.time(start))


def earliest_ts(session: Session, registered: RegisteredModel) -> datetime | None:
    first: datetime | None = session.scalar(
        select(func.min(TelemetryBatch.first_ts)).where(
            TelemetryBatch.model_version_id == registered.version.id
        )
    )
    if first is not None and first.tzinfo is None:
        first = first.replace(tzinfo=UTC)
    return first


def due_time_spans(
    first_start: datetime, spec: WindowSpec, now: datetime, limit: int
) -> list[tuple[datetime, datetime]]:
    """Consecutive spans from ``first_start`` whose end plus the delay has passed, at most
    ``limit`` of them.

    >>> spec = WindowSpec(type="tumbling", by="time", seconds=60, delay_seconds=10)
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> [(a.minute, b.minute) for a, b in due_time_spans(t0, spec, t0 + timedelta(seconds=125), 9)]
    [(0, 1)]
    """
    assert spec.seconds is not None
    length = timedelta(seconds=spec.seconds)
    delay = timedelta(seconds=spec.delay_seconds)
    spans: list[tuple[datetime, datetime]] = []
    start = first_start
    while len(spans) < limit and start + length + delay <= now:
        spans.append((start, start + length))
        start += length
    return spans


def load_span(
    session: Session, registered: RegisteredModel, start: datetime, end: datetime
) -> pa.Table | None:
    """The records with ``start <= ts < end``, oldest first; None when there are none."""
    rows = session.execute(
        select(TelemetryBatch.data).where(
            TelemetryBatch.model_version_id == registered.version.id,
            TelemetryBatch.last_ts >= start,
            TelemetryBatch.first_ts < end,
        )
    )
    blobs = [row.data for row in rows]
    if not blobs:
        return None
    table = pa.concat_tables([from_bytes(b) for b in blobs])
    ts = table.column("ts")
    inside = pc.and_(
        pc.greater_equal(ts, pa.scalar(start, TS_TYPE)), pc.less(ts, pa.scalar(end, TS_TYPE))
    )
    table = table.filter(inside)
    return table.sort_by("ts") if table.num_rows else None


def next_count_window(
    session: Session,
    registered: RegisteredModel,
    cursor: dict[str, Any] | None,
    size: int,
    now: datetime,
) -> Window | None:
    """The next ``size`` records after ``cursor`` in arrival order, or None if not yet there."""
    batch_from = int(cursor["batch"]) if cursor else 0
    skip = int(cursor["row"]) if cursor else 0
    query = (
        select(TelemetryBatch.id, TelemetryBatch.n_records, TelemetryBatch.data)
        .where(
            TelemetryBatch.model_version_id == registered.version.id,
            TelemetryBatch.id >= batch_from,
            TelemetryBatch.received_at <= now - SETTLE,
        )
        .order_by(TelemetryBatch.id)
    )
    parts: list[pa.Table] = []
    held = 0
    first: tuple[int, int] | None = None
    last: tuple[int, int] = (batch_from, skip)
    for batch_id, n_records, data in session.execute(query):
        offset = skip if batch_id == batch_from else 0
        if offset >= n_records:
            continue
        take = min(n_records - offset, size - held)
        parts.append(from_bytes(data).slice(offset, take))
        if first is None:
            first = (batch_id, offset)
        held += take
        last = (batch_id, offset + take)
        if held == size:
            break
    if held < size or first is None:
        return None
    table = pa.concat_tables(parts)
    return Window(
        key=str(WindowKey.count(first[0], first[1])),
        start=None,
        end=None,
        table=table.sort_by("ts"),
        next_cursor={"batch": last[0], "row": last[1]},
    )


def time_window(
    session: Session,
    registered: RegisteredModel,
    start: datetime,
    end: datetime,
    spec: WindowSpec,
    now: datetime,
) -> Window:
    """The window ``[start, end)``; an empty one reaches over the empty windows after it.

    A model that gets no telemetry for a week would otherwise leave 10,080 empty one-minute
    runs; instead one "no data" run covers the gap, up to the window of the next record or the
    last window that is due, and the windows stay contiguous.
    """
    table = load_span(session, registered, start, end)
    if table is None:
        end = max(end, _gap_end(session, registered, end, spec, now))
    return Window(
        key=time_key(start),
        start=start,
        end=end,
        table=table,
        next_cursor={"start": end.isoformat()},
    )


def _gap_end(
    session: Session, registered: RegisteredModel, end: datetime, spec: WindowSpec, now: datetime
) -> datetime:
    assert spec.seconds is not None
    last_due_end = align(now - timedelta(seconds=spec.delay_seconds), spec.seconds)
    following: datetime | None = session.scalar(
        select(func.min(TelemetryBatch.first_ts)).where(
            TelemetryBatch.model_version_id == registered.version.id,
            TelemetryBatch.last_ts >= end,
        )
    )
    if following is None:
        return last_due_end
    if following.tzinfo is None:
        following = following.replace(tzinfo=UTC)
    return min(align(following, spec.seconds), last_due_end)


def window_span(run: DetectionRun) -> tuple[datetime, datetime]:
    """``[start, end)`` of the run's records; ValueError for a run without a window.

    A time window (key ``t:...``) is stored with its own edges; any other run stores its first
    and last record's timestamps, so its end is one microsecond after the last record.
    """
    if run.window_start is None or run.window_end is None:
        raise ValueError(f"run {run.id} has no window: it was computed on no records")
    if WindowKey.is_time(run.window_key):
        return run.window_start, run.window_end
    return run.window_start, run.window_end + timedelta(microseconds=1)
