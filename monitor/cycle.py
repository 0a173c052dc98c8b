"""One detection cycle of a monitor: run its due windows, check the model's alert rules, then
count the records that arrived after their window was computed (:mod:`monitor.runs.late`).

The one sequence that the API (``POST /detect``), the CLI (``tidewatch detect``) and the
scheduler's jobs all call, so a manual run alerts exactly as a scheduled one does.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.lifecycle import Alerting
from monitor.db.models import RegisteredModel
from monitor.db.tables import DetectionRun
from monitor.runs.late import count_late_records
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.spec.model import MonitorConfig

log = logging.getLogger("tidewatch.monitoring")


class UnknownMonitor(LookupError):
    """The model has no monitor of that name."""


def monitors_named(registered: RegisteredModel, name: str | None) -> list[MonitorConfig]:
    """The model's monitors, or the one named; :class:`UnknownMonitor` when there is none."""
    found = [m for m in registered.spec.monitors if name is None or m.name == name]
    if not found:
        raise UnknownMonitor(f"model {registered.spec.name!r} has no monitor {name!r}")
    return found


def run_and_alert(
    sessions: sessionmaker[Session],
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cache: ReferenceCache,
    alerting: Alerting,
    *,
    device: str,
    trigger: str,
    now: datetime | None = None,
) -> list[DetectionRun]:
    """Compute what is due for ``monitor`` at ``now``, then check the alert rules on the new
    runs (alerting never raises: a failed check is logged and retried after the next run)."""
    runs = run_due(sessions, registered, monitor, cache, now=now, device=device, trigger=trigger)
    alerting.after_runs(registered, monitor.name, runs)
    note_late_records(sessions, registered, monitor)
    return runs


def note_late_records(
    sessions: sessionmaker[Session], registered: RegisteredModel, monitor: MonitorConfig
) -> None:
    """Count records that arrived after their window's run, and say so; a failed count is
    logged and done again at the next cycle (it remembers how far it got)."""
    try:
        late = count_late_records(sessions, registered, monitor)
    except SQLAlchemyError as exc:  # e.g. SQLite busy: the next cycle checks the same batches
        log.warning("%s/%s: late records not counted: %s", registered.spec.name, monitor.name, exc)
        return
    if late:
        log.warning(
            "%s/%s: %d records arrived after their window was computed; "
            "`tidewatch status %s` names the windows, a backfill recomputes them",
            registered.spec.name,
            monitor.name,
            late,
            registered.spec.name,
        )
