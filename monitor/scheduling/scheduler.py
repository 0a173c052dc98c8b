"""The scheduler: every monitor of every model runs by itself, on its interval or cron.

One :class:`Worker` per process (inside ``tidewatch serve``, or alone as ``tidewatch worker``).
Only the leader (:mod:`monitor.scheduling.leader`) runs an APScheduler ``BackgroundScheduler``;
its jobs live in the database (``SQLAlchemyJobStore``, table ``tidewatch_jobs``), so a new leader
picks up each job's next run time where the old one left it. Jobs coalesce (runs missed while no
leader was up collapse into one) and a run later than ``misfire_grace_seconds`` is skipped;
nothing is lost either way, because a tumbling monitor computes every window closed since its
cursor. ``max_instances=1`` and a per-monitor lock mean a monitor never runs twice at once in a
process; across processes, :mod:`monitor.runs.monitoring` locks the monitor's state row.

The leader re-reads the models every ``scheduler_sync_seconds`` (models are created through any
replica) and adds, changes or removes jobs; a job is replaced only when its schedule changed,
so re-syncing never postpones an interval job.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.delivery import channels_from, deliver_due, refresh_alertmanager
from monitor.alerting.lifecycle import Alerting
from monitor.cycle import run_and_alert
from monitor.db.models import get_model, list_models
from monitor.db.tables import DetectionRun
from monitor.observability.service import LEADER, SCHEDULER_LAG
from monitor.runs.pipeline import ReferenceCache
from monitor.scheduling.leader import LeaderLock, announce, holder_name
from monitor.settings import Settings
from monitor.spec.model import MonitorConfig, ScheduleSpec

log = logging.getLogger("tidewatch.scheduler")
JOB_TABLE = "tidewatch_jobs"
SYSTEM_JOBS = ("tidewatch:deliver", "tidewatch:telemetry-rules", "tidewatch:alertmanager-refresh")
Clock = Callable[[], datetime]

# APScheduler stores a job's function by its import path, so the job can only find its worker
# through module state: the worker of this process that leads (one per process).
_LEADER: list[Worker] = []


def _utcnow() -> datetime:
    return datetime.now(UTC)


def job_id(model: str, monitor: str) -> str:
    return f"monitor:{model}:{monitor}"


def trigger_for(schedule: ScheduleSpec) -> IntervalTrigger | CronTrigger:
    if schedule.cron is not None:
        return CronTrigger.from_crontab(schedule.cron, timezone=UTC)
    assert schedule.every is not None
    return IntervalTrigger(seconds=schedule.every, timezone=UTC)


def _fingerprint(schedule: ScheduleSpec) -> str:
    return hashlib.sha256(schedule.model_dump_json().encode()).hexdigest()[:16]


def scheduled_run(model: str, monitor: str) -> None:
    """What every job calls (by import path): run one monitor in this process's leader."""
    if not _LEADER:
        log.warning("no leading worker in this process; skipping %s/%s", model, monitor)
        return
    _LEADER[-1].run_monitor(model, monitor, trigger="schedule")


class Worker:
    """Leader election, the job set and the runs of one process.

    ``clock`` gives "now" to the monitors (tests pass a controllable one); APScheduler keeps its
    own wall clock for *when* to fire.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        sessions: sessionmaker[Session],
        cache: ReferenceCache,
        *,
        clock: Clock = _utcnow,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.cache = cache
        self.clock = clock
        self.holder = holder_name()
        self.lock = LeaderLock(engine)
        self.scheduler: BackgroundScheduler | None = None
        self._monitor_locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # windows computed by this process (tests and logs)
        self.alerting = Alerting(settings, sessions, clock)
        self.channels = channels_from(settings)
        self._synced = 0.0

    # -- running monitors ------------------------------------------------------------------
    def _monitor_lock(self, model: str, monitor: str) -> threading.Lock:
        with self._locks_guard:
            return self._monitor_locks.setdefault((model, monitor), threading.Lock())

    def run_monitor(self, model: str, monitor: str, *, trigger: str) -> list[DetectionRun]:
        """Compute what is due for one monitor now; waits if it is already running here."""
        with self._monitor_lock(model, monitor):
            with self.sessions() as session:
                registered = get_model(session, model)
            if registered is None:
                return []
            config = next((m for m in registered.spec.monitors if m.name == monitor), None)
            if config is None:
                return []
            try:
                runs = run_and_alert(
                    self.sessions,
                    registered,
                    config,
                    self.cache,
                    self.alerting,
                    now=self.clock(),
                    device=self.settings.device,
                    trigger=trigger,
                )
            except Exception:
                log.exception("monitor %s/%s failed", model, monitor)
                raise
            self.runs += len(runs)
            return runs

    def run_all(self) -> int:
        """Run every monitor of every model once (what the jobs do, all at once)."""
        with self.sessions() as session:
            models = [(m.spec.name, m.spec.monitors) for m in list_models(session)]
        done = 0
        for name, monitors in models:
            for config in monitors:
                done += len(self.run_monitor(name, config.name, trigger="schedule"))
        return done

    # -- the job set -----------------------------------------------------------------------
    def wanted_jobs(self) -> dict[str, tuple[str, MonitorConfig]]:
        with self.sessions() as session:
            return {
                job_id(m.spec.name, c.name): (m.spec.name, c)
                for m in list_models(session)
                for c in m.spec.monitors
            }

    def sync_jobs(self) -> None:
        """Make the scheduler's jobs match the models' monitors."""
        scheduler = self.scheduler
        if scheduler is None:
            return
        self._synced = time.monotonic()
        wanted = self.wanted_jobs()
        existing = {job.id: job for job in scheduler.get_jobs()}
        for jid in existing:
            if jid not in wanted and jid not in SYSTEM_JOBS:
                scheduler.remove_job(jid)
        for jid, (func, seconds) in self.system_jobs().items():
            fingerprint = f"every:{seconds}"
            job = existing.get(jid)
            if job is None or job.kwargs.get("fingerprint") != fingerprint:
                scheduler.add_job(
                    func,
                    trigger=IntervalTrigger(seconds=seconds, timezone=UTC),
                    id=jid,
                    name=jid,
                    kwargs={"fingerprint": fingerprint},
                    replace_existing=True,
                )
        for jid, (model, config) in wanted.items():
            fingerprint = _fingerprint(config.schedule)
            job = existing.get(jid)
            if job is not None and job.kwargs.get("fingerprint") == fingerprint:
                continue
            scheduler.add_job(
                "monitor.scheduling.scheduler:_job",
                trigger=trigger_for(config.schedule),
                id=jid,
                name=f"{model}/{config.name}",
                args=[model, config.name],
                kwargs={"fingerprint": fingerprint},
                replace_existing=True,
            )

    def system_jobs(self) -> dict[str, tuple[str, float]]:
        """Jobs of the service itself: delivering the outbox, checking for silent models."""
        return {
            "tidewatch:deliver": (
                "monitor.scheduling.scheduler:_deliver",
                self.settings.alert_delivery_seconds,
            ),
            "tidewatch:telemetry-rules": ("monitor.scheduling.scheduler:_telemetry_rules", 60.0),
            # Alertmanager resolves an alert it has not heard of for 5 minutes
            "tidewatch:alertmanager-refresh": (
                "monitor.scheduling.scheduler:_refresh_alertmanager",
                60.0,
            ),
        }

    def deliver(self) -> int:
        return deliver_due(self.sessions, self.channels, self.settings, self.clock())

    # -- leading ---------------------------------------------------------------------------
    def _start_scheduler(self) -> None:
        grace = self.settings.misfire_grace_seconds
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine, tablename=JOB_TABLE)},
            executors={"default": ThreadPoolExecutor(self.settings.scheduler_threads)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
            timezone=UTC,
        )
        self.scheduler = scheduler
        _LEADER.append(self)
        LEADER.set(1)
        scheduler.add_listener(_observe_lag, EVENT_JOB_SUBMITTED)
        scheduler.start(paused=True)
        self.sync_jobs()
        scheduler.resume()
        log.info("scheduling %d monitor jobs", len(scheduler.get_jobs()))

    def _stop_scheduler(self) -> None:
        if self.scheduler is not None:
            scheduler, self.scheduler = self.scheduler, None
            scheduler.shutdown(wait=False)
        if self in _LEADER:
            _LEADER.remove(self)
        LEADER.set(1 if _LEADER else 0)

    @property
    def leading(self) -> bool:
        return self.scheduler is not None

    def step(self) -> None:
        """One round of the leader loop: acquire, or check the lock and sync the jobs."""
        if self.leading:
            if not self.lock.still_held():
                log.warning("lost the scheduler lock; stepping down")
                self._stop_scheduler()
                return
            announce(self.sessions, self.holder, acquired=False)
            if time.monotonic() - self._synced >= self.settings.scheduler_sync_seconds:
                self.sync_jobs()
            return
        if self.lock.try_acquire():
            log.info("%s leads the scheduler", self.holder)
            announce(self.sessions, self.holder, acquired=True)
            self._start_scheduler()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("scheduler leader loop failed; retrying")
                self._stop_scheduler()
                self.lock.release()
            self._stop.wait(self.settings.leader_poll_seconds)

    def start(self) -> Worker:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tidewatch-leader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._stop_scheduler()
        self.lock.release()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _observe_lag(event: JobSubmissionEvent) -> None:
    planned = event.scheduled_run_times[-1] if event.scheduled_run_times else None
    if planned is not None:
        SCHEDULER_LAG.observe(max((datetime.now(UTC) - planned).total_seconds(), 0.0))


def _deliver(fingerprint: str = "") -> None:
    if _LEADER:
        _LEADER[-1].deliver()


def _telemetry_rules(fingerprint: str = "") -> None:
    if _LEADER:
        _LEADER[-1].alerting.check_telemetry()


def _refresh_alertmanager(fingerprint: str = "") -> None:
    if _LEADER and "alertmanager" in _LEADER[-1].channels:
        refresh_alertmanager(_LEADER[-1].sessions, _LEADER[-1].channels["alertmanager"])


def _job(model: str, monitor: str, fingerprint: str = "") -> None:
    """The job function (its import path is what the job store keeps)."""
    scheduled_run(model, monitor)
