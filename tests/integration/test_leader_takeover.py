"""Two ``tidewatch worker`` processes on one PostgreSQL: one leads, and when it is killed with
SIGKILL the other takes over; the one-second tumbling windows of a live stream are each computed
exactly once, none skipped across the takeover."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from monitor.db.tables import DetectionRun, TelemetryRecord
from monitor.scheduling.leader import current_leader
from monitor.server import free_port
from tests.integration.serve_process import BIN
from tests.monitor.monitoring_helpers import Db, make_db, records, spec

pytestmark = pytest.mark.integration

MONITOR = {
    "name": "live",
    # computed 2 s after it closes: every record posted for it has arrived by then
    "window": {"type": "tumbling", "by": "time", "seconds": 1, "delay_seconds": 2},
    "min_samples": 5,
    "schedule": {"every": 1},
}


def _leader_pid(db: Db) -> int | None:
    with db.sessions() as session:
        row = current_leader(session)
    return None if row is None else int(row.holder.split(":")[1])


def _wait(condition: object, what: str, logs: list[Path], timeout: float = 90.0) -> None:
    # a deadline for a hung test, not a speed requirement (the measured time is printed)
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            tails = "\n".join(p.read_text()[-1500:] for p in logs)
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)


def test_one_leader_and_takeover_after_kill_9(pg_url: str, tmp_path: Path) -> None:
    db = make_db(pg_url, spec([MONITOR]))
    stop = threading.Event()

    def stream() -> None:
        # a live module: 20 records a second, stamped over the second before they are posted
        n = 0
        while not stop.is_set():
            start = datetime.now(UTC) - timedelta(seconds=1)
            db.post(records(start, 20, seconds=1, prefix=f"s{n}-", seed=n))
            n += 1
            stop.wait(1.0)

    feeder = threading.Thread(target=stream, daemon=True)
    feeder.start()
    env = {
        **os.environ,
        "TIDEWATCH_DATABASE_URL": pg_url,
        "TIDEWATCH_DEVICE": "cpu",
        "TIDEWATCH_LEADER_POLL_SECONDS": "0.5",
        "TIDEWATCH_SCHEDULER_SYNC_SECONDS": "1",
        "TIDEWATCH_LOG_LEVEL": "warning",
    }
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    procs = []
    metrics: dict[int, str] = {}  # pid -> its /metrics
    for log in logs:
        port = free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(BIN / "tidewatch"), "worker"],
                env={**env, "TIDEWATCH_METRICS_PORT": str(port)},
                stdout=out,
                stderr=out,
            )
        procs.append(proc)
        metrics[proc.pid] = f"http://127.0.0.1:{port}/metrics"

    def leads(pid: int) -> float:
        text = httpx.get(metrics[pid], timeout=10).text
        line = next(x for x in text.splitlines() if x.startswith("tidewatch_scheduler_leader "))
        return float(line.split()[1])

    try:
        _wait(lambda: _leader_pid(db) in {p.pid for p in procs}, "a leader", logs)
        leader_pid = _leader_pid(db)
        leader = next(p for p in procs if p.pid == leader_pid)
        follower = next(p for p in procs if p.pid != leader_pid)

        def windows() -> list[DetectionRun]:
            with db.sessions() as session:
                return list(
                    session.scalars(
                        select(DetectionRun)
                        .where(DetectionRun.monitor == "live")
                        .order_by(DetectionRun.window_start)
                    )
                )

        _wait(lambda: len(windows()) >= 3, "the leader's first windows", logs)
        time.sleep(1.5)
        assert _leader_pid(db) == leader_pid
        # each process says on /metrics whether it leads
        assert (leads(leader.pid), leads(follower.pid)) == (1.0, 0.0)
        # only the leader computes: every run so far is the leader's
        assert {r.runner.split(":")[1] for r in windows() if r.runner} == {str(leader_pid)}
        before_kill = len(windows())

        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=30)
        killed_at = time.monotonic()
        _wait(lambda: _leader_pid(db) == follower.pid, "the follower to lead", logs)
        takeover = time.monotonic() - killed_at
        _wait(lambda: leads(follower.pid) == 1.0, "the new leader's metrics", logs)
        before = len(windows())
        _wait(lambda: len(windows()) >= before + 3, "windows after the takeover", logs)
        print(f"takeover after kill -9: {takeover:.2f} s")
    finally:
        stop.set()
        feeder.join(timeout=30)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)

    runs = windows()
    runners = [int((r.runner or "x:0").split(":")[1]) for r in runs]
    assert set(runners[:before_kill]) == {leader.pid}
    assert set(runners[before_kill:]) <= {leader.pid, follower.pid}
    assert runners[-1] == follower.pid
    starts = [r.window_start for r in runs]
    assert len(set(starts)) == len(starts)  # no window twice
    # no window skipped: each run starts where the previous one ended (an empty second, should
    # the feeder lag, is folded into one longer "no data" run)
    edges = [(a.window_end, b.window_start) for a, b in itertools.pairwise(runs)]
    assert all(end == start for end, start in edges), edges
    assert all(r.window_end - r.window_start == timedelta(seconds=1) for r in runs if r.n_current)
    assert all(r.trigger == "schedule" for r in runs)
    # no record lost or counted twice: the windows hold exactly the records stamped inside them
    with db.sessions() as session:
        stamped = session.scalar(
            select(func.count())
            .select_from(TelemetryRecord)
            .where(
                TelemetryRecord.ts >= runs[0].window_start,
                TelemetryRecord.ts < runs[-1].window_end,
            )
        )
    assert sum(r.n_current for r in runs) == stamped > 0
