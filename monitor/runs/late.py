"""Records that arrived after their window was computed ("late"), counted on the window's run.

A tumbling time window is computed once, ``delay_seconds`` after it closes. A record whose
timestamp falls in it but that arrives later (a client's spool sent after an outage, a batch
file collected late) is in no run: nothing changes, and nobody would know. So at each monitor
cycle the telemetry batches received since the last check are compared with the monitor's
computed windows, and every record of such a batch whose time lies in a window computed
before the batch arrived is added to that run's ``late_records``. The status names the
windows with late records; a backfill of them recomputes each with every record, and the new
run starts at zero.

A run's ``started_at`` is taken after its window's records were read, so a batch received
after it was not in the run. Batches are checked in id order, up to the first one received
less than ``SETTLE`` ago (one whose id came first may still be committing, as for count
windows), at most ``MAX_BATCHES`` per check.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.db.models import RegisteredModel
from monitor.db.tables import DetectionRun, MonitorState, TelemetryBatch, TelemetryRecord
from monitor.runs.windows import SETTLE
from monitor.spec.model import MonitorConfig
from monitor.vocabulary import WindowKind

MAX_BATCHES = 1_000


def _batches_to_check(
    session: Session, registered: RegisteredModel, after: int, upto: datetime
) -> list[int]:
    """Ids of the batches after ``after``, oldest first, up to the first not yet settled."""
    rows = session.execute(
        select(TelemetryBatch.id, TelemetryBatch.received_at)
        .where(TelemetryBatch.model_version_id == registered.version.id, TelemetryBatch.id > after)
        .order_by(TelemetryBatch.id)
        .limit(MAX_BATCHES)
    )
    ids = []
    for batch_id, received_at in rows:
        if received_at > upto:
            break
        ids.append(batch_id)
    return ids


def _late_per_run(
    session: Session, registered: RegisteredModel, monitor: str, first: int, last: int
) -> list[tuple[int, int]]:
    """(run id, records) for the records of batches ``first..last`` in windows computed
    before their batch arrived."""
    run, batch, record = DetectionRun, TelemetryBatch, TelemetryRecord
    joined = (
        select(run.id, func.count())
        .select_from(batch)
        .join(record, record.batch_id == batch.id)
        .join(
            run,
            and_(
                run.model_version_id == batch.model_version_id,
                run.monitor == monitor,
                run.window_key.startswith(f"{WindowKind.TIME.value}:"),
                run.started_at < batch.received_at,
                run.window_start <= batch.last_ts,
                run.window_end > batch.first_ts,
                record.ts >= run.window_start,
                record.ts < run.window_end,
            ),
        )
        .where(
            batch.model_version_id == registered.version.id,
            batch.id >= first,
            batch.id <= last,
        )
        .group_by(run.id)
    )
    return [(run_id, count) for run_id, count in session.execute(joined)]


def count_late_records(
    sessions: sessionmaker[Session],
    registered: RegisteredModel,
    monitor: MonitorConfig,
    *,
    now: datetime | None = None,
) -> int:
    """Add the records that arrived late since the last check to their runs (tumbling time
    monitors; others have no closed windows to miss). Returns how many were added.

    One transaction: the monitor's state row (locked on PostgreSQL) remembers the last batch
    checked, so each batch is counted once even when two processes check at once.
    """
    spec = monitor.window
    if spec.type != "tumbling" or spec.by != "time":
        return 0
    upto = (now or datetime.now(UTC)) - SETTLE
    with sessions() as session:
        state = session.scalar(
            select(MonitorState)
            .where(
                MonitorState.model_version_id == registered.version.id,
                MonitorState.monitor == monitor.name,
            )
            .with_for_update()
        )
        if state is None:
            return 0  # never run: no window to be late for
        ids = _batches_to_check(session, registered, state.late_checked_batch or 0, upto)
        if not ids:
            return 0
        added = 0
        for run_id, count in _late_per_run(session, registered, monitor.name, ids[0], ids[-1]):
            session.execute(
                update(DetectionRun)
                .where(DetectionRun.id == run_id)
                .values(late_records=DetectionRun.late_records + count)
            )
            added += count
        state.late_checked_batch = ids[-1]
        session.commit()
        return added
