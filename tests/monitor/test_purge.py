"""Retention: a chunked purge removes old telemetry and labels only, while ingest goes on."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from monitor.data.layout import from_bytes
from monitor.db.tables import (
    DetectionResult,
    DetectionRun,
    Label,
    MonitorState,
    TelemetryBatch,
    TelemetryRecord,
)
from monitor.db.telemetry import purge
from monitor.scheduling.retention import purge_expired
from tests.monitor.monitoring_helpers import T0, Db, make_db, records, spec

OLD = T0 - timedelta(days=40)
CUTOFF = T0 - timedelta(days=30)
# (prefix, number of records, old?): old and new batches interleave, so chunks of batch ids
# meet new batches between old ones; sizes differ, so the records bound cuts chunks unevenly
BATCHES = [
    ("o0-", 10, True),
    ("n0-", 6, False),
    ("o1-", 3, True),
    ("o2-", 12, True),
    ("n1-", 8, False),
    ("o3-", 1, True),
    ("o4-", 7, True),
    ("n2-", 4, False),
    ("o5-", 9, True),
]
OLD_BATCHES = sum(old for _, _, old in BATCHES)


def ids(prefix: str, n: int) -> set[str]:
    return {f"{prefix}{i}" for i in range(n)}


def fill(db: Db) -> tuple[set[str], set[str]]:
    """Post ``BATCHES`` and label some records of each; returns (new record ids, new labels)."""
    new_records: set[str] = set()
    for prefix, n, old in BATCHES:
        assert db.post(records(OLD if old else T0, n, seconds=60, prefix=prefix)) == n
        if not old:
            new_records |= ids(prefix, n)
    # labels: received now (new) or moved back to OLD (old), for old and new records alike,
    # and one for a record that was never posted
    db.label([(f"o0-{i}", "copepod") for i in range(6)] + [("n0-0", "diatom"), ("ghost", "x")])
    db.label([(f"n1-{i}", "copepod") for i in range(5)] + [("o4-0", "diatom")])
    old_labels = {"o0-0", "o0-1", "o0-2", "n1-0", "n1-1", "ghost"}
    with db.sessions() as session:
        session.execute(
            update(Label).where(Label.record_id.in_(old_labels)).values(received_at=OLD)
        )
        session.commit()
    all_labels = {f"o0-{i}" for i in range(6)} | {f"n1-{i}" for i in range(5)}
    all_labels |= {"n0-0", "ghost", "o4-0"}
    return new_records, all_labels - old_labels


def add_detection_results(db: Db) -> None:
    with db.sessions() as session:
        run = DetectionRun(
            model_version_id=db.registered.version.id,
            monitor="drift",
            status="ok",
            window_start=OLD,
            window_end=OLD + timedelta(hours=1),
        )
        session.add(run)
        session.flush()
        session.add(
            DetectionResult(
                run_id=run.id, feature="x", method="ks", drift=False, n_reference=1, n_current=1
            )
        )
        session.add(
            MonitorState(
                model_version_id=db.registered.version.id, monitor="drift", cursor={"batch": 1}
            )
        )
        session.commit()


def stored(db: Db) -> dict[str, Any]:
    with db.sessions() as session:
        return {
            "batches": session.scalar(select(func.count()).select_from(TelemetryBatch)),
            "records": set(session.scalars(select(TelemetryRecord.record_id))),
            "labels": set(session.scalars(select(Label.record_id))),
            "runs": session.scalar(select(func.count()).select_from(DetectionRun)),
            "results": session.scalar(select(func.count()).select_from(DetectionResult)),
            "states": session.scalar(select(func.count()).select_from(MonitorState)),
        }


CHUNKINGS = [
    pytest.param({}, id="defaults-one-chunk"),
    pytest.param(
        {"batches_per_chunk": 1, "records_per_chunk": 1, "labels_per_chunk": 1}, id="one-by-one"
    ),
    pytest.param(
        {"batches_per_chunk": 3, "records_per_chunk": 15, "labels_per_chunk": 2}, id="small"
    ),
]


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_purge_removes_old_telemetry_and_labels_only(db_url: str, chunks: dict[str, int]) -> None:
    db = make_db(db_url, spec([]))
    new_records, new_labels = fill(db)
    add_detection_results(db)
    commits = 0

    def count_commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(db.engine, "commit", count_commit)
    with db.sessions() as session:
        assert purge(session, CUTOFF, **chunks) == OLD_BATCHES
    event.remove(db.engine, "commit", count_commit)
    after = stored(db)
    assert after == {
        "batches": len(BATCHES) - OLD_BATCHES,
        "records": new_records,
        "labels": new_labels,
        "runs": 1,
        "results": 1,
        "states": 1,
    }
    if chunks.get("batches_per_chunk") == 1:
        # one transaction per old batch and per old label, and one more that finds none left
        assert commits >= OLD_BATCHES + 6
    # a second purge finds nothing to do
    with db.sessions() as session:
        assert purge(session, CUTOFF, **chunks) == 0
    assert stored(db) == after
    db.engine.dispose()


def test_idempotency_after_a_purge(db_url: str) -> None:
    db = make_db(db_url, spec([]))
    fill(db)
    with db.sessions() as session:
        assert purge(session, CUTOFF, batches_per_chunk=2, records_per_chunk=10) == OLD_BATCHES
    # purged ids are forgotten: posted again, they are new records
    assert db.post(records(T0, 10, seconds=60, prefix="o0-")) == 10
    # ids still stored are duplicates, also when mixed with new ones in one batch
    assert db.post(records(T0, 6, seconds=60, prefix="n0-")) == 0
    assert db.post(records(T0, 12, seconds=60, prefix="n1-")) == 4  # n1-8 .. n1-11 are new
    with db.sessions() as session:
        counted = Counter(session.scalars(select(TelemetryRecord.record_id)))
    assert set(counted.values()) == {1}
    assert set(counted) == ids("o0-", 10) | ids("n0-", 6) | ids("n1-", 12) | ids("n2-", 4)
    db.engine.dispose()


def test_purge_expired_passes_chunk_sizes(db_url: str) -> None:
    db = make_db(db_url, spec([]))
    new_records, new_labels = fill(db)
    # a retention that puts the cutoff at CUTOFF (give or take the time this line takes)
    retention_days = (datetime.now(UTC) - CUTOFF) / timedelta(days=1)
    assert purge_expired(db.sessions, retention_days, batches_per_chunk=1) == OLD_BATCHES
    after = stored(db)
    assert (after["records"], after["labels"]) == (new_records, new_labels)
    db.engine.dispose()


def ingest_while_purging(db: Db) -> None:
    """Old telemetry, then a thread posting new batches (some replaying old ids) meanwhile."""
    for b in range(30):
        assert db.post(records(OLD, 50, seconds=600, prefix=f"old{b}-")) == 50
    db.label([(f"old{b}-0", "copepod") for b in range(30)])
    with db.sessions() as session:
        session.execute(update(Label).values(received_at=OLD))
        session.commit()

    first_posted = threading.Event()
    purged = threading.Event()
    accepted: list[int] = []
    fresh: set[str] = set()
    replayed: set[str] = set()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            b = 0
            while not purged.is_set() or b < 10:
                batch = records(T0, 40, seconds=60, prefix=f"new{b}-", seed=b)
                fresh.update(r.id for r in batch)
                if b % 3 == 0:  # a client replaying old ids, with new timestamps
                    again = records(T0, 50, seconds=60, prefix=f"old{b % 30}-")[:10]
                    replayed.update(r.id for r in again)
                    batch += again
                accepted.append(db.post(batch))
                first_posted.set()
                b += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            first_posted.set()

    thread = threading.Thread(target=writer)
    thread.start()
    first_posted.wait()
    try:
        with db.sessions() as session:
            removed = purge(session, CUTOFF, batches_per_chunk=2, labels_per_chunk=4)
    finally:
        purged.set()
        thread.join()
    assert not errors, errors
    assert removed >= 1

    with db.sessions() as session:
        rows = session.execute(select(TelemetryRecord.record_id, TelemetryRecord.ts)).all()
        blobs = session.scalars(select(TelemetryBatch.data)).all()
        oldest = session.scalar(select(func.min(TelemetryBatch.last_ts)))
        labels = session.scalar(select(func.count()).select_from(Label))
    in_blobs = Counter(rid for blob in blobs for rid in from_bytes(blob).column("id").to_pylist())
    in_table = Counter(rid for rid, _ in rows)
    # every record accepted is stored exactly once, in the table and in a batch's blob
    assert in_blobs == in_table
    assert set(in_table.values()) == {1}
    assert sum(accepted) == len(rows)
    # every fresh id posted is there; a replayed old id is there at most once, as a new record
    assert fresh <= set(in_table)
    assert set(in_table) - fresh <= replayed
    # everything old is gone, nothing new is
    assert all(ts >= CUTOFF for _, ts in rows)
    assert oldest is not None and oldest >= CUTOFF
    assert labels == 0


@pytest.mark.integration
def test_ingest_while_purging_on_postgresql(pg_url: str) -> None:
    db = make_db(pg_url, spec([]))
    ingest_while_purging(db)
    db.engine.dispose()


def test_ingest_while_purging_on_sqlite(tmp_path: Path) -> None:
    db = make_db(f"sqlite:///{tmp_path / 'tidewatch.db'}", spec([]))
    ingest_while_purging(db)
    db.engine.dispose()
