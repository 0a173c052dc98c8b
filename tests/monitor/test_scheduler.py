"""The scheduler: jobs from the models' monitors in a persistent job store, coalescing and
misfires under a real APScheduler, and leader election (SQLite file lock, PostgreSQL advisory
lock, stepping down when the lock's connection dies)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from monitor.db.models import upsert_model
from monitor.db.tables import DetectionRun
from monitor.runs.pipeline import ReferenceCache
from monitor.scheduling.leader import LeaderLock, current_leader
from monitor.scheduling.scheduler import Worker, job_id
from monitor.settings import Settings
from tests.monitor.monitoring_helpers import T0, Clock, Db, make_db, records, spec

MONITORS = [
    {"name": "every", "schedule": {"every": 3600}},
    {"name": "nightly", "schedule": {"cron": "15 2 * * *"}},
]


def _worker(db: Db, url: str, **settings: Any) -> Worker:
    values = {"scheduler_sync_seconds": 3600, "misfire_grace_seconds": 5, **settings}
    return Worker(
        Settings(database_url=url, device="cpu", **values), db.engine, db.sessions, ReferenceCache()
    )


def _wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    # a deadline for a hung test, not a speed requirement
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_jobs_follow_the_monitors_and_survive_a_restart(db_url: str) -> None:
    db = make_db(db_url, spec(MONITORS))
    worker = _worker(db, db_url)
    worker.step()
    assert worker.leading and worker.scheduler is not None
    jobs = {job.id: job for job in worker.scheduler.get_jobs()}
    assert set(jobs) == {
        job_id("plankton", "every"),
        job_id("plankton", "nightly"),
        "tidewatch:deliver",  # the alert outbox
        "tidewatch:telemetry-rules",  # silent models
        "tidewatch:alertmanager-refresh",  # firing alerts stay active there
    }
    every, nightly = jobs[job_id("plankton", "every")], jobs[job_id("plankton", "nightly")]
    assert (
        isinstance(every.trigger, IntervalTrigger)
        and every.trigger.interval.total_seconds() == 3600
    )
    assert isinstance(nightly.trigger, CronTrigger)
    assert (nightly.next_run_time.hour, nightly.next_run_time.minute) == (2, 15)
    assert (every.coalesce, every.max_instances, every.misfire_grace_time) == (True, 1, 5)
    planned = every.next_run_time
    worker.stop()

    # a new process leads: the job store still holds the jobs, their next run unchanged
    later = _worker(db, db_url)
    later.step()
    assert later.scheduler is not None
    again = later.scheduler.get_job(job_id("plankton", "every"))
    assert again is not None and again.next_run_time == planned
    later.sync_jobs()  # re-syncing an unchanged monitor does not postpone it
    assert later.scheduler.get_job(job_id("plankton", "every")).next_run_time == planned

    # change one schedule and drop the other monitor: the jobs follow
    changed = spec([{"name": "every", "schedule": {"every": 60}}])
    with db.sessions() as session:
        upsert_model(session, changed)
    later.sync_jobs()
    (job,) = [j for j in later.scheduler.get_jobs() if j.id.startswith("monitor:")]
    assert job.id == job_id("plankton", "every") and job.trigger.interval.total_seconds() == 60
    later.stop()


def _events(worker: Worker) -> list[JobEvent]:
    """The scheduler's events about monitor jobs (not the service's own jobs)."""
    seen: list[JobEvent] = []
    assert worker.scheduler is not None

    def keep(event: JobEvent) -> None:
        if event.job_id.startswith("monitor:"):
            seen.append(event)

    worker.scheduler.add_listener(
        keep, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
    )
    return seen


def test_missed_runs_coalesce_into_one_and_late_runs_are_skipped(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    db = make_db(url, spec([{"name": "fast", "schedule": {"every": 1}}, {"name": "slow"}]))
    calls: list[str] = []
    done = threading.Event()

    def fake_run(self: Worker, model: str, monitor: str, *, trigger: str) -> list[Any]:
        calls.append(monitor)
        assert self.scheduler is not None
        self.scheduler.pause()  # stop after the first wave: what was submitted is what counts
        done.set()
        return []

    monkeypatch.setattr(Worker, "run_monitor", fake_run)
    worker = _worker(db, url)
    worker.step()
    assert worker.scheduler is not None
    events = _events(worker)
    now = datetime.now(UTC)
    # "fast" missed 30 runs while no leader was up; "slow" missed its only run by far more
    # than the grace time
    worker.scheduler.modify_job(
        job_id("plankton", "slow"), next_run_time=now - timedelta(seconds=60)
    )
    worker.scheduler.modify_job(
        job_id("plankton", "fast"), next_run_time=now - timedelta(seconds=30)
    )
    worker.scheduler.wakeup()
    assert done.wait(60)
    _wait_for(lambda: any(e.code == EVENT_JOB_MISSED for e in events), "the missed run")
    time.sleep(0.5)  # let a second submission, if there were one, show up
    submitted = sorted(e.job_id for e in events if e.code == EVENT_JOB_SUBMITTED)
    # one submission each: the 30 missed runs of "fast" were coalesced into one
    assert submitted == [job_id("plankton", "fast"), job_id("plankton", "slow")]
    assert not [e for e in events if e.code == EVENT_JOB_MAX_INSTANCES]
    # "slow" was due too long ago: skipped as missed, never executed
    missed = [e.job_id for e in events if e.code == EVENT_JOB_MISSED]
    assert missed == [job_id("plankton", "slow")]
    assert calls == ["fast"]
    slow = worker.scheduler.get_job(job_id("plankton", "slow"))
    assert slow is not None and slow.next_run_time > now  # rescheduled, not dropped
    worker.stop()


def test_a_running_worker_runs_monitors_by_itself(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    db = make_db(
        url,
        spec(
            [
                {
                    "name": "drift",
                    "window": {"size": 100},
                    "min_samples": 20,
                    "schedule": {"every": 1},
                }
            ]
        ),
    )
    db.post(records(datetime.now(UTC) - timedelta(minutes=1), 150, seconds=50))
    with _worker(db, url, leader_poll_seconds=0.2) as worker:

        def scheduled() -> list[DetectionRun]:
            with db.sessions() as session:
                return list(
                    session.scalars(select(DetectionRun).where(DetectionRun.trigger == "schedule"))
                )

        _wait_for(lambda: len(scheduled()) >= 2, "two scheduled runs")
        assert worker.leading
    runs = scheduled()
    assert all(r.status == "ok" and r.n_current == 100 for r in runs)
    with db.sessions() as session:
        leader = current_leader(session)
    assert leader is not None and leader.holder == worker.holder


def test_sqlite_file_lock_has_one_holder(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    db = make_db(url, spec([{"name": "drift"}]))
    first, second = LeaderLock(db.engine), LeaderLock(db.engine)
    assert first.try_acquire() and not second.try_acquire()
    first.release()
    assert second.try_acquire() and second.still_held()
    second.release()


@pytest.mark.integration
def test_postgres_leader_steps_down_when_its_connection_dies(pg_url: str) -> None:
    db = make_db(pg_url, spec([{"name": "drift"}]))
    leader, follower = _worker(db, pg_url), _worker(db, pg_url)
    leader.step()
    follower.step()
    assert leader.leading and not follower.leading
    with db.sessions() as session:
        row = current_leader(session)
        assert row is not None and row.holder == leader.holder
    # the leader's database session ends (a network cut, a killed backend): the advisory lock
    # is free, the follower takes it, and the old leader notices at its next check
    assert leader.lock._conn is not None
    pid = leader.lock._conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _wait_for(lambda: (follower.step(), follower.leading)[1], "the follower to lead")
    leader.step()
    assert not leader.leading
    with db.sessions() as session:
        row = current_leader(session)
        assert row is not None and row.holder == follower.holder
    leader.stop()
    follower.stop()


def test_the_worker_runs_monitors_at_its_clock(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'clock.db'}"
    minute = {"type": "tumbling", "by": "time", "seconds": 60}
    db = make_db(url, spec([{"name": "drift", "window": minute, "min_samples": 10}]))
    db.post(records(T0, 120, seconds=120))
    clock = Clock(T0 + timedelta(seconds=30))
    worker = Worker(
        Settings(database_url=url, device="cpu"),
        db.engine,
        db.sessions,
        ReferenceCache(),
        clock=clock,
    )
    assert worker.run_all() == 0  # nothing has closed at T0 + 30 s
    clock.advance(31)
    assert worker.run_all() == 1
    assert worker.run_all() == 0  # the same moment again: nothing twice
    clock.advance(60)
    assert worker.run_all() == 1
    assert worker.runs == 2
