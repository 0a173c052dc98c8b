"""Migrations (concurrent, idempotent, matching the tables), compact batches, retention."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from collectors.wire import Record
from monitor.data.from_records import records_to_table
from monitor.data.layout import from_bytes, to_bytes
from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.migrate import current_revision, head_revision, upgrade
from monitor.db.models import upsert_model
from monitor.db.tables import Base, TelemetryBatch, TelemetryRecord
from monitor.db.telemetry import ingest, purge
from monitor.spec.model import ModelSpec
from tests.conftest import SPEC, record

UPGRADE = (
    "from monitor.db.engine import make_engine; from monitor.db.migrate import upgrade; "
    "upgrade(make_engine({url!r}))"
)


def test_upgrade_is_idempotent_and_matches_the_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"tables and migrations disagree: {diff}"
    engine.dispose()


def _predicate(sql: object) -> str:
    """A WHERE clause without PostgreSQL's casts and parentheses, to compare as written."""
    return " ".join(str(sql).replace("::text", "").replace("(", "").replace(")", "").split())


def test_partial_indexes_keep_their_predicate(db_url: str) -> None:
    # compare_metadata does not look at index predicates, and tables.py keeps them in
    # info["where"] (see partial_index): each migrated index must have the declared one
    engine = make_engine(db_url)
    upgrade(engine)
    declared = {
        (table.name, index.name): index.info["where"]
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if "where" in index.info
    }
    assert declared
    with engine.connect() as conn:
        inspector = inspect(conn)
        for (table, name), where in declared.items():
            (found,) = [i for i in inspector.get_indexes(table) if i["name"] == name]
            options = found.get("dialect_options", {})
            assert _predicate(options.get(f"{engine.dialect.name}_where")) == where, name
    engine.dispose()


def test_two_processes_upgrading_at_once_both_succeed(db_url: str) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", UPGRADE.format(url=db_url)], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    engine = make_engine(db_url)
    assert current_revision(engine) == head_revision()
    assert "telemetry_batches" in inspect(engine).get_table_names()
    engine.dispose()


def test_a_batch_is_one_compact_row(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    spec = ModelSpec.model_validate(SPEC)
    with sessions() as session:
        registered, _ = upsert_model(session, spec)
    records = [Record.model_validate(record(i, brightness=i / 10)) for i in range(1000)]
    table = records_to_table(records, spec)
    outcome = ingest(sessions, engine, registered, table)
    assert outcome.accepted == 1000
    with sessions() as session:
        batches = session.scalars(select(TelemetryBatch)).all()
        assert len(batches) == 1
        # columns, not rows of values: 1,000 records of 7 values fit in a few kB
        assert len(batches[0].data) < 20_000
        back = from_bytes(batches[0].data)
        assert back.column("f.brightness").to_pylist()[:3] == [0.0, 0.1, 0.2]
        assert session.scalar(select(func.count()).select_from(TelemetryRecord)) == 1000
    engine.dispose()


def test_purge_removes_old_telemetry_only(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    spec = ModelSpec.model_validate(SPEC)
    with sessions() as session:
        registered, _ = upsert_model(session, spec)
    now = datetime.now(UTC)
    old = [
        Record.model_validate(record(i, timestamp=(now - timedelta(days=40)).isoformat()))
        for i in range(5)
    ]
    new = [Record.model_validate(record(i + 5, timestamp=now.isoformat())) for i in range(5)]
    ingest(sessions, engine, registered, records_to_table(old, spec))
    ingest(sessions, engine, registered, records_to_table(new, spec))
    with sessions() as session:
        assert purge(session, now - timedelta(days=30)) == 1
        assert session.scalar(select(func.count()).select_from(TelemetryBatch)) == 1
        ids = set(session.scalars(select(TelemetryRecord.record_id)))
    assert ids == {f"r{i}" for i in range(5, 10)}
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/wal.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()


def test_arrow_round_trip_keeps_types() -> None:
    spec = ModelSpec.model_validate(SPEC)
    table = records_to_table([Record.model_validate(record(1))], spec)
    assert table.schema.field("f.emb").type == pa.list_(pa.float32(), 3)
    assert from_bytes(to_bytes(table)).equals(table)
