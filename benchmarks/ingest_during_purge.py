"""Ingest throughput on PostgreSQL while retention purges a large volume of old telemetry.

    .venv/bin/python benchmarks/ingest_during_purge.py [--records 2000000] [--seconds 20]
        [--writers 3] [--replay-every 10] [--database-url URL]

Issue #8, item 4. A scratch PostgreSQL database (created on 127.0.0.1 and dropped afterwards,
unless ``--database-url`` names one) is loaded with ``--records`` OLD records (batches of
1,000, 16 numeric features, timestamps 40 days back, retention 30 days), written straight into
the tables so that loading takes seconds. Then ``--writers`` threads post 1,000-record batches
through ``monitor.db.telemetry.ingest`` (what the API's handler calls) for ``--seconds``, three
times, each from the same freshly loaded state:

- (a) no purge;
- (b) the chunked purge (``monitor.db.telemetry.purge``) started as the clock starts;
- (c) the old purge, one transaction (a copy of it is kept below), started likewise.

A purge that outlasts ``--seconds`` keeps the clock running until it ends, so its whole effect
is measured. Every ``--replay-every``-th batch carries 10 record ids that also exist in the old
data (a client replaying ids, or restarting its counter): ingest must wait for a transaction
that has deleted, but not yet committed, such an id. That wait is what the chunking bounds.
Arrow tables are built before each batch's clock starts. One run; the machine is shared and
noisy, so read ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
import pyarrow as pa  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import Engine, delete, event, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from collectors.wire import Prediction, Record  # noqa: E402
from monitor.data.from_records import records_to_table  # noqa: E402
from monitor.data.layout import to_bytes  # noqa: E402
from monitor.db.engine import make_engine, make_sessionmaker  # noqa: E402
from monitor.db.migrate import upgrade  # noqa: E402
from monitor.db.models import RegisteredModel, upsert_model  # noqa: E402
from monitor.db.tables import Label, TelemetryBatch, TelemetryRecord  # noqa: E402
from monitor.db.telemetry import (  # noqa: E402
    PURGE_BATCHES_PER_CHUNK,
    PURGE_RECORDS_PER_CHUNK,
    ingest,
    purge,
)
from monitor.spec.model import ModelSpec  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 150)
PG_ADMIN = os.environ.get("TIDEWATCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
N_FEATURES, BATCH, REPLAYED = 16, 1000, 10
RETENTION = timedelta(days=30)
SPEC = ModelSpec.model_validate(
    {
        "name": "bench",
        "features": [{"name": f"x{j}", "kind": "numeric"} for j in range(N_FEATURES)],
        "output": {"task": "classification", "classes": ["a", "b"]},
    }
)


def old_purge(session: Session, older_than: datetime) -> int:
    """The purge before issue #8: everything in one transaction (kept for the comparison)."""
    old = select(TelemetryBatch.id).where(TelemetryBatch.last_ts < older_than)
    session.execute(delete(TelemetryRecord).where(TelemetryRecord.batch_id.in_(old)))
    result = session.execute(delete(TelemetryBatch).where(TelemetryBatch.last_ts < older_than))
    session.execute(delete(Label).where(Label.received_at < older_than))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def template(start: datetime, seed: int) -> pa.Table:
    """One 1,000-record batch as ingest stores it (ids are replaced per batch)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, N_FEATURES)).round(6)
    return records_to_table(
        [
            Record(
                id=f"t{i}",
                timestamp=start + timedelta(milliseconds=i),
                features={f"x{j}": float(x[i, j]) for j in range(N_FEATURES)},
                prediction=Prediction(label="a" if x[i, 0] < 0 else "b"),
            )
            for i in range(BATCH)
        ],
        SPEC,
    )


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load_old(url: str, registered: RegisteredModel, n_records: int) -> list[int]:
    """Empty the telemetry tables, then write ``n_records`` old records; returns batch ids."""
    start = datetime.now(UTC) - RETENTION - timedelta(days=10)
    blobs = [to_bytes(template(start, seed)) for seed in range(4)]
    n_batches = max(1, n_records // BATCH)
    with psycopg.connect(plain(url)) as conn:
        conn.execute("TRUNCATE telemetry_records, telemetry_batches, labels")
        ids: list[int] = []
        with conn.cursor() as cur:
            for first in range(0, n_batches, 50):
                rows = [
                    (
                        registered.version.id,
                        start,
                        start + timedelta(seconds=b),
                        start + timedelta(seconds=b + 1),
                        BATCH,
                        1.0,
                        blobs[b % len(blobs)],
                    )
                    for b in range(first, min(first + 50, n_batches))
                ]
                cur.executemany(
                    "INSERT INTO telemetry_batches (model_version_id, received_at, first_ts, "
                    "last_ts, n_records, sampling_rate, data) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "RETURNING id",
                    rows,
                    returning=True,
                )
                while True:
                    ids.append(cur.fetchone()[0])  # type: ignore[index]
                    if not cur.nextset():
                        break
        conn.execute(
            "INSERT INTO telemetry_records (model_id, record_id, batch_id, ts) "
            "SELECT %s, 'old-' || b.id || '-' || g, b.id, b.first_ts + g * INTERVAL '1 ms' "
            "FROM telemetry_batches b CROSS JOIN generate_series(0, b.n_records - 1) AS g",
            (registered.model.id,),
        )
        conn.commit()
    with psycopg.connect(plain(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    return ids


@dataclass
class Phase:
    name: str
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (end, seconds)
    window: tuple[float, float] = (0.0, 0.0)
    purge: tuple[float, float] | None = None
    purge_commits: list[float] = field(default_factory=list)
    removed: int = 0


def run_phase(
    name: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    registered: RegisteredModel,
    old_ids: list[int],
    purger: Callable[[Session, datetime], int] | None,
    args: argparse.Namespace,
) -> Phase:
    phase = Phase(name)
    new = template(datetime.now(UTC), seed=100)
    id_column = new.schema.get_field_index("id")
    stop = threading.Event()
    lock = threading.Lock()
    errors: list[BaseException] = []
    purge_thread: list[threading.Thread] = []
    tag = uuid.uuid4().hex[:6]

    def writer(w: int) -> None:
        rng = random.Random(w)
        b = 0
        try:
            while not stop.is_set():
                batch_ids = [f"{tag}-{w}-{b}-{i}" for i in range(BATCH)]
                if args.replay_every and b % args.replay_every == args.replay_every - 1:
                    bid = rng.choice(old_ids)
                    batch_ids[:REPLAYED] = [f"old-{bid}-{i}" for i in range(REPLAYED)]
                table = new.set_column(id_column, "id", pa.array(batch_ids, pa.string()))
                started = time.perf_counter()
                ingest(sessions, engine, registered, table)
                ended = time.perf_counter()
                with lock:
                    phase.latencies.append((ended, ended - started))
                b += 1
        except BaseException as exc:
            errors.append(exc)

    def run_purge() -> None:
        def committed(_conn: Any) -> None:
            if threading.current_thread() is purge_thread[0]:
                phase.purge_commits.append(time.perf_counter())

        event.listen(engine, "commit", committed)
        cutoff = datetime.now(UTC) - RETENTION
        started = time.perf_counter()
        try:
            with sessions() as session:
                assert purger is not None
                phase.removed = purger(session, cutoff)
        except BaseException as exc:
            errors.append(exc)
        finally:
            phase.purge = (started, time.perf_counter())
            event.remove(engine, "commit", committed)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
    for t in writers:
        t.start()
    time.sleep(args.warmup)
    begin = time.perf_counter()
    if purger is not None:
        purge_thread.append(threading.Thread(target=run_purge))
        purge_thread[0].start()
    time.sleep(args.seconds)
    if purge_thread:
        purge_thread[0].join()
    end = time.perf_counter()
    stop.set()
    for t in writers:
        t.join()
    if errors:
        raise errors[0]
    phase.window = (begin, end)
    return phase


def stats(phase: Phase, span: tuple[float, float]) -> tuple[float, list[float]]:
    """Records/s of the batches committed within ``span``, and their latencies, sorted."""
    lat = [s for end, s in phase.latencies if span[0] <= end <= span[1]]
    return len(lat) * BATCH / (span[1] - span[0]), sorted(lat)


def in_flight(phase: Phase, span: tuple[float, float]) -> tuple[float, list[float]]:
    """Records/s committed within ``span``; latencies of every batch in flight during it."""
    rate, _ = stats(phase, span)
    lat = [s for end, s in phase.latencies if end >= span[0] and end - s <= span[1]]
    return rate, sorted(lat)


def p99(lat: list[float]) -> float:
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000, help="old records to purge")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--writers", type=int, default=3, help="threads posting batches")
    parser.add_argument("--replay-every", type=int, default=10, help="0: never replay old ids")
    parser.add_argument("--batches-per-chunk", type=int, default=PURGE_BATCHES_PER_CHUNK)
    parser.add_argument("--records-per-chunk", type=int, default=PURGE_RECORDS_PER_CHUNK)
    parser.add_argument("--database-url", default=None, help="default: a scratch database")
    args = parser.parse_args()

    scratch = None
    url = args.database_url
    if url is None:
        scratch = f"tw_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{scratch}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + scratch
    try:
        engine = make_engine(url)
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            registered, _ = upsert_model(session, SPEC)

        def chunked(session: Session, cutoff: datetime) -> int:
            return purge(
                session,
                cutoff,
                batches_per_chunk=args.batches_per_chunk,
                records_per_chunk=args.records_per_chunk,
            )

        phases, load_s = [], []
        for name, purger in (
            ("(a) no purge", None),
            (
                f"(b) chunked purge, {args.batches_per_chunk} batches "
                f"(<= {args.records_per_chunk:,} records)/txn",
                chunked,
            ),
            ("(c) old purge, one transaction", old_purge),
        ):
            t = time.perf_counter()
            old_ids = load_old(url, registered, args.records)
            load_s.append(time.perf_counter() - t)
            console.print(
                f"{name}: {len(old_ids) * BATCH:,} old records loaded in {load_s[-1]:.0f} s"
            )
            phases.append(run_phase(name, engine, sessions, registered, old_ids, purger, args))
        engine.dispose()
    finally:
        if scratch is not None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')

    console.print(
        f"PostgreSQL, {args.records:,} old records ({args.records // BATCH:,} batches of {BATCH}, "
        f"{N_FEATURES} numeric features) purged while {args.writers} threads ingest "
        f"{BATCH}-record batches; every {args.replay_every or 'no'}th batch replays "
        f"{REPLAYED} old ids; {os.cpu_count()} CPUs, one run"
    )
    table = Table(
        "scenario",
        "purge s",
        "longest purge txn s",
        "records/s",
        "records/s, purge running",
        "p50 ms",
        "p99 ms",
        "p99 ms, purge running",
        "max ms",
        title=f"ingest for {args.seconds:.0f} s or until the purge ends; batch latency",
    )
    for phase in phases:
        rate, lat = stats(phase, phase.window)
        purge_s = longest = during = p99_during = "-"
        if phase.purge is not None:
            p0, p1 = phase.purge
            purge_s = f"{p1 - p0:.1f} ({phase.removed:,} batches)"
            marks = [p0, *phase.purge_commits]
            longest = f"{max(b - a for a, b in itertools.pairwise(marks)):.2f}"
            during_rate, during_lat = in_flight(phase, phase.purge)
            during = f"{during_rate:,.0f}"
            p99_during = f"{1000 * p99(during_lat):.0f}"
        table.add_row(
            phase.name,
            purge_s,
            longest,
            f"{rate:,.0f}",
            during,
            f"{1000 * statistics.median(lat):.0f}",
            f"{1000 * p99(lat):.0f}",
            p99_during,
            f"{1000 * lat[-1]:.0f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
