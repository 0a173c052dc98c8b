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
from sqlalchemy import Engine, and_, delete, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from collectors.wire import Label as WireLabel
from monitor.data.layout import from_bytes, to_bytes
from monitor.db.models import RegisteredModel
from monitor.db.tables import Label, TelemetryBatch, TelemetryRecord
from monitor.spec.model import WindowSpec

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
    "ON CONFLICT DO NOTHING"
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
        inserted = session.execute(_PG_CLAIM, params).rowcount  # type: ignore[attr-defined]
        if inserted == len(ids):  # the usual case: all new, nothing to send back
            return set(ids)
        # a resend: ours are the ids now pointing at this batch
        return set(
            session.scalars(
                select(TelemetryRecord.record_id).where(TelemetryRecord.batch_id == batch_id)
            )
        )
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
    session: Session,
    registered: RegisteredModel,
    table: pa.Table,
    sampling_rate: float,
    ignored: dict[str, int] | None,
) -> IngestOutcome:
    # Optimistic: store the whole batch, then claim its ids. Only a retried batch (some ids
    # stored before) pays for rewriting the blob with the records it really added.
    batch = TelemetryBatch(
        model_version_id=registered.version.id,
        sampling_rate=sampling_rate,
        ignored_features=ignored or None,
    )
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
    ignored: dict[str, int] | None = None,
) -> IngestOutcome:
    """Store a validated batch durably (committed) and say how many records were new.

    ``ignored``: the undeclared features left out of the batch (name -> records), kept with it
    so that the model's status can name them.
    """

    def attempt() -> IngestOutcome:
        with session_factory() as session:
            return _write_batch(session, registered, table, sampling_rate, ignored)

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


# Retention deletes in chunks, each its own short transaction (see `purge`). A chunk of 200
# batches of 1,000 records (200,000 rows and their index entries) took 0.3 s on PostgreSQL on
# the 2-core reference machine with ingest running (benchmarks/ingest_during_purge.py): that
# is the longest an ingest waits on the purge, while the per-chunk cost (one SELECT, one
# commit) stays negligible; the records bound keeps chunks of unusually large batches short.
PURGE_BATCHES_PER_CHUNK = 200
PURGE_RECORDS_PER_CHUNK = 200_000
PURGE_LABELS_PER_CHUNK = 5_000


def _in_chunk(
    session: Session, attempt: Callable[[Session], tuple[int, Any, bool]]
) -> tuple[int, Any, bool]:
    """Run one purge chunk as its own committed transaction, retried like an ingest."""

    def once() -> tuple[int, Any, bool]:
        try:
            result = attempt(session)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return result

    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    outcome: tuple[int, Any, bool] = _with_retries(engine, once)
    return outcome


def _purge_batches_chunk(
    session: Session, cutoff: datetime, after: int | None, batches: int, max_records: int
) -> tuple[int, int | None, bool]:
    """Delete up to ``batches`` old batches with id > ``after``; (removed, last id, more?)."""
    query = select(TelemetryBatch.id, TelemetryBatch.n_records).where(
        TelemetryBatch.last_ts < cutoff
    )
    if after is not None:
        query = query.where(TelemetryBatch.id > after)
    rows = session.execute(
        query.order_by(TelemetryBatch.id)
        .limit(batches)
        # PostgreSQL: a batch another purger holds is skipped, never waited for (it deletes
        # it). SQLite renders no FOR UPDATE: it has one writer at a time anyway.
        .with_for_update(skip_locked=True)
    ).all()
    more = len(rows) == batches
    ids: list[int] = []
    held = 0
    for batch_id, n_records in rows:
        if ids and held + n_records > max_records:
            more = True  # the rest (locked until this commit) goes to the next chunk
            break
        ids.append(batch_id)
        held += n_records
    if not ids:
        return 0, after, False
    removed = 0
    for i in range(0, len(ids), _ID_CHUNK):
        part = ids[i : i + _ID_CHUNK]
        session.execute(
            delete(TelemetryRecord).where(TelemetryRecord.batch_id.in_(part)),
            execution_options={"synchronize_session": False},
        )
        result = session.execute(
            # last_ts is checked again: only what is old at the time of the delete goes
            delete(TelemetryBatch).where(
                TelemetryBatch.id.in_(part), TelemetryBatch.last_ts < cutoff
            ),
            execution_options={"synchronize_session": False},
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed, ids[-1], more


def _purge_labels_chunk(
    session: Session, cutoff: datetime, after: tuple[int, str] | None, limit: int
) -> tuple[int, tuple[int, str] | None, bool]:
    """Delete up to ``limit`` old labels after key ``after``; (removed, last key, more?)."""
    query = select(Label.model_id, Label.record_id).where(Label.received_at < cutoff)
    if after is not None:
        model_id, record_id = after
        query = query.where(
            or_(
                Label.model_id > model_id,
                and_(Label.model_id == model_id, Label.record_id > record_id),
            )
        )
    keys = session.execute(
        query.order_by(Label.model_id, Label.record_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not keys:
        return 0, after, False
    by_model: dict[int, list[str]] = {}
    for model_id, record_id in keys:
        by_model.setdefault(model_id, []).append(record_id)
    removed = 0
    for model_id, record_ids in by_model.items():
        for i in range(0, len(record_ids), _ID_CHUNK):
            result = session.execute(
                # received_at is checked again: a label replaced since is new, and stays
                delete(Label).where(
                    Label.model_id == model_id,
                    Label.record_id.in_(record_ids[i : i + _ID_CHUNK]),
                    Label.received_at < cutoff,
                ),
                execution_options={"synchronize_session": False},
            )
            removed += int(getattr(result, "rowcount", 0) or 0)
    last = keys[-1]
    return removed, (last[0], last[1]), len(keys) == limit


def purge(
    session: Session,
    older_than: datetime,
    *,
    batches_per_chunk: int = PURGE_BATCHES_PER_CHUNK,
    records_per_chunk: int = PURGE_RECORDS_PER_CHUNK,
    labels_per_chunk: int = PURGE_LABELS_PER_CHUNK,
) -> int:
    """Delete telemetry whose newest record is older than ``older_than``, and old labels.

    Returns the number of batches removed. Detection results (runs, results, monitor state,
    alerts) are never touched.

    The work is done in chunks, each one committed transaction: up to ``batches_per_chunk``
    batches with ``last_ts`` before the cutoff (and at most ``records_per_chunk`` records
    among them, but always at least one batch), their ``telemetry_records`` rows first, then
    the batches; then labels received before the cutoff, ``labels_per_chunk`` keys at a time.
    Chunks walk the primary key upwards, so each one starts where the last ended and the whole
    purge ends even while ingest goes on. Why chunks rather than one transaction:

    - Ingest never waits long. A batch that claims a record id the purge has deleted but not
      yet committed (a client reusing or replaying an old id) waits for that transaction; on
      SQLite every writer waits for it. With chunks that is one chunk's transaction (0.3 s on
      PostgreSQL at the defaults, see above), not the whole purge.
    - Nothing newer than the cutoff goes. A batch is chosen only when its newest record is
      older than the cutoff, and records are deleted by batch: every record of a batch is at
      least as old as its ``last_ts``, and a record belongs to one batch for good. Batches
      that a concurrent ingest has not committed yet are invisible, so they are not chosen.
      The delete checks the cutoff again, so a label replaced since it was chosen stays.
    - It never blocks on a writer. On PostgreSQL the rows of a chunk are chosen ``FOR UPDATE
      SKIP LOCKED``: a row another transaction holds (a label being replaced, a second
      purger's chunk) is skipped, not waited for; it is gone or new by the next purge.
    - Less WAL and bloat at a time; autovacuum can reclaim space while the purge goes on, and
      a crash loses one chunk's work, not all of it.

    Each chunk is retried like an ingest (on SQLite busy, or a conflict) and holds the
    process's SQLite write lock only for its own transaction, so ingest in the same process
    interleaves with it.
    """
    if batches_per_chunk < 1 or records_per_chunk < 1 or labels_per_chunk < 1:
        raise ValueError("chunk sizes must be at least 1")
    batches_removed = 0
    after_batch: int | None = None
    more = True
    while more:

        def batches_chunk(s: Session, after: int | None = after_batch) -> tuple[int, Any, bool]:
            return _purge_batches_chunk(s, older_than, after, batches_per_chunk, records_per_chunk)

        removed, after_batch, more = _in_chunk(session, batches_chunk)
        batches_removed += removed
    after_label: tuple[int, str] | None = None
    more = True
    while more:

        def labels_chunk(
            s: Session, after: tuple[int, str] | None = after_label
        ) -> tuple[int, Any, bool]:
            return _purge_labels_chunk(s, older_than, after, labels_per_chunk)

        _, after_label, more = _in_chunk(session, labels_chunk)
    return batches_removed
