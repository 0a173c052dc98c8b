"""Telemetry batches, record ids, labels and retention.

Ingest is idempotent by record id: ids already stored for the model are dropped from the batch
before it is written, so a retried batch is not counted twice. A concurrent writer that slips
the same id in between is caught by the primary key; the transaction is then retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from collectors.wire import Label as WireLabel
from monitor.data.layout import from_bytes, to_bytes
from monitor.db.models import RegisteredModel
from monitor.db.tables import Label, TelemetryBatch, TelemetryRecord
from monitor.schema import WindowSpec

_ID_CHUNK = 900  # stays under SQLite's bound-parameter limit on old builds
_SQLITE_WRITE_LOCKS: dict[str, threading.Lock] = {}


@dataclass(frozen=True)
class IngestOutcome:
    accepted: int
    duplicates: int
    batch_id: int | None


def _write_lock(engine: Engine) -> threading.Lock | None:
    """SQLite has one writer at a time; queueing in-process beats spinning on SQLITE_BUSY."""
    if engine.dialect.name != "sqlite":
        return None
    return _SQLITE_WRITE_LOCKS.setdefault(str(engine.url), threading.Lock())


# PostgreSQL: ids and timestamps travel as two arrays in one statement, several times faster
# than a 1,000-row executemany. ON CONFLICT probes the primary key once per id, so the cost does
# not grow with the table, and a concurrent batch with the same ids waits for ours and skips them.
_PG_CLAIM = text(
    "INSERT INTO telemetry_records (model_id, record_id, batch_id, ts) "
    "SELECT :model, u.rid, :batch, TIMESTAMPTZ 'epoch' + u.us * INTERVAL '1 microsecond' "
    "FROM unnest(CAST(:ids AS text[]), CAST(:us AS bigint[])) AS u(rid, us) "
    "ON CONFLICT DO NOTHING RETURNING record_id"
)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _claim_ids(session: Session, model_id: int, batch_id: int, table: pa.Table) -> set[str]:
    """Register the batch's record ids; returns those that were new (not stored before)."""
    ids: list[str] = table.column("id").to_pylist()
    ts = table.column("ts")
    if _is_postgres(session):
        micros = pc.cast(ts, pa.int64()).to_pylist()
        params = {"model": model_id, "batch": batch_id, "ids": ids, "us": micros}
        return set(session.scalars(_PG_CLAIM, params))
    stmt = (
        sqlite.insert(TelemetryRecord).on_conflict_do_nothing().returning(TelemetryRecord.record_id)
    )
    rows = [
        {"model_id": model_id, "record_id": rid, "batch_id": batch_id, "ts": t}
        for rid, t in zip(ids, ts.to_pylist(), strict=True)
    ]
    return set(session.scalars(stmt, rows))


def _known_ids(session: Session, model_id: int, ids: list[str]) -> set[str]:
    """Which of ``ids`` are stored records (for labels; small lists, chunked IN lookups)."""
    found: set[str] = set()
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        found.update(
            session.scalars(
                select(TelemetryRecord.record_id).where(
                    TelemetryRecord.model_id == model_id, TelemetryRecord.record_id.in_(chunk)
                )
            )
        )
    return found


def _describe(batch: TelemetryBatch, table: pa.Table) -> None:
    ts = table.column("ts")
    batch.first_ts = pc.min(ts).as_py()
    batch.last_ts = pc.max(ts).as_py()
    batch.n_records = table.num_rows
    batch.data = to_bytes(table)


def _write_batch(
    session: Session, registered: RegisteredModel, table: pa.Table, sampling_rate: float
) -> IngestOutcome:
    # Optimistic: store the whole batch, then claim its ids. Only a retried batch (some ids
    # stored before) pays for rewriting the blob with the records it really added.
    batch = TelemetryBatch(model_version_id=registered.version.id, sampling_rate=sampling_rate)
    _describe(batch, table)
    session.add(batch)
    session.flush()
    new = _claim_ids(session, registered.model.id, batch.id, table)
    duplicates = table.num_rows - len(new)
    if not new:
        session.delete(batch)
        session.commit()
        return IngestOutcome(0, duplicates, None)
    if duplicates:
        ids = table.column("id").to_pylist()
        _describe(batch, table.filter(pa.array([rid in new for rid in ids])))
    session.commit()
    return IngestOutcome(len(new), duplicates, batch.id)


def _with_retries(engine: Engine, attempt: Callable[[], Any], attempts: int = 5) -> Any:
    lock = _write_lock(engine)
    for n in range(attempts):
        try:
            if lock is None:
                return attempt()
            with lock:
                return attempt()
        except (IntegrityError, OperationalError):
            # a concurrent batch stored some of our ids, or SQLite was busy: start over
            if n == attempts - 1:
                raise
            time.sleep(0.01 * 2**n)
    raise AssertionError("unreachable")


def ingest(
    session_factory: Callable[[], Session],
    engine: Engine,
    registered: RegisteredModel,
    table: pa.Table,
    sampling_rate: float = 1.0,
) -> IngestOutcome:
    """Store a validated batch durably (committed) and say how many records were new."""

    def attempt() -> IngestOutcome:
        with session_factory() as session:
            return _write_batch(session, registered, table, sampling_rate)

    outcome: IngestOutcome = _with_retries(engine, attempt)
    return outcome


def _upsert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def save_labels(
    session_factory: Callable[[], Session],
    engine: Engine,
    registered: RegisteredModel,
    labels: list[WireLabel],
) -> tuple[int, int]:
    """Store (or replace) labels by record id; returns (stored, matching known records)."""
    now = datetime.now(UTC)
    rows = [
        {
            "model_id": registered.model.id,
            "record_id": lab.id,
            "label": lab.label,
            "value": lab.value,
            "payload": None
            if lab.boxes is None
            else {"boxes": [b.model_dump() for b in lab.boxes]},
            "received_at": now,
        }
        for lab in labels
    ]

    def attempt() -> tuple[int, int]:
        with session_factory() as session:
            stmt = _upsert(session)(Label)
            stmt = stmt.on_conflict_do_update(
                index_elements=["model_id", "record_id"],
                set_={c: stmt.excluded[c] for c in ("label", "value", "payload", "received_at")},
            )
            session.execute(stmt, rows)
            matched = len(_known_ids(session, registered.model.id, [lab.id for lab in labels]))
            session.commit()
            return len(rows), matched

    result: tuple[int, int] = _with_retries(engine, attempt)
    return result


def load_window(
    session: Session, registered: RegisteredModel, window: WindowSpec, now: datetime | None = None
) -> pa.Table | None:
    """The current window of telemetry for a model version, oldest record first.

    Count windows take the last ``size`` records by timestamp (batches are read newest first
    until enough rows are in hand); time windows take the records of the last ``seconds``.
    """
    base = select(TelemetryBatch.data, TelemetryBatch.n_records).where(
        TelemetryBatch.model_version_id == registered.version.id
    )
    if window.by == "time":
        assert window.seconds is not None
        start = (now or datetime.now(UTC)) - timedelta(seconds=window.seconds)
        blobs = [row.data for row in session.execute(base.where(TelemetryBatch.last_ts >= start))]
        if not blobs:
            return None
        table = pa.concat_tables([from_bytes(b) for b in blobs])
        table = table.filter(
            pc.greater_equal(table.column("ts"), pa.scalar(start, table.schema.field("ts").type))
        )
        return table.sort_by("ts")
    assert window.size is not None
    blobs, held = [], 0
    for row in session.execute(
        base.order_by(TelemetryBatch.last_ts.desc(), TelemetryBatch.id.desc())
    ):
        blobs.append(row.data)
        held += row.n_records
        if held >= window.size:
            break
    if not blobs:
        return None
    table = pa.concat_tables([from_bytes(b) for b in blobs]).sort_by("ts")
    return table.slice(max(0, table.num_rows - window.size))


def count_records(session: Session, registered: RegisteredModel) -> int:
    from sqlalchemy import func

    total = session.scalar(
        select(func.coalesce(func.sum(TelemetryBatch.n_records), 0)).where(
            TelemetryBatch.model_version_id == registered.version.id
        )
    )
    return int(total or 0)


def purge(session: Session, older_than: datetime) -> int:
    """Delete telemetry whose newest record is older than ``older_than``.

    Returns the number of batches removed.
    """
    old = select(TelemetryBatch.id).where(TelemetryBatch.last_ts < older_than)
    session.execute(delete(TelemetryRecord).where(TelemetryRecord.batch_id.in_(old)))
    result = session.execute(delete(TelemetryBatch).where(TelemetryBatch.last_ts < older_than))
    session.execute(delete(Label).where(Label.received_at < older_than))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
