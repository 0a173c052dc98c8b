"""One log line per finished detection run: what an operator reads in the worker's log.

``run finished`` on ``tidewatch.runs`` with the fields ``run``, ``model``, ``version``,
``monitor``, ``trigger``, ``window`` (its key, or ``start/end`` for a sliding window),
``status``, ``records``, ``drifted`` (the drifted features, most drifted first, at most
:data:`MAX_NAMED`), ``n_drifted`` and ``seconds`` (the computation's wall time).
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.db.models import RegisteredModel
from monitor.db.tables import DetectionResult, DetectionRun
from monitor.observability.logs import fields

log = logging.getLogger("tidewatch.runs")
MAX_NAMED = 10  # a log line, not a report: the report names them all


def _window(run: DetectionRun) -> str | None:
    if run.window_key is not None:
        return run.window_key
    if run.window_start is None or run.window_end is None:
        return None  # no records, so no edges
    return f"{run.window_start.isoformat()}/{run.window_end.isoformat()}"  # ISO 8601 interval


def log_run(
    sessions: sessionmaker[Session], registered: RegisteredModel, run: DetectionRun
) -> None:
    """Log ``run`` (stored and committed) at INFO; reads its drifted features only when that
    line is wanted."""
    if not log.isEnabledFor(logging.INFO):
        return
    with sessions() as session:
        drifted = list(
            session.scalars(
                select(DetectionResult.feature)
                .where(DetectionResult.run_id == run.id, DetectionResult.drift.is_(True))
                .order_by(DetectionResult.p_adjusted.asc().nulls_last(), DetectionResult.id)
            )
        )
    seconds = None
    if run.finished_at is not None and run.started_at is not None:
        seconds = round((run.finished_at - run.started_at).total_seconds(), 3)
    log.info(
        "run finished",
        extra=fields(
            run=run.id,
            model=registered.spec.name,
            version=registered.spec.version,
            monitor=run.monitor,
            trigger=run.trigger,
            window=_window(run),
            status=run.status,
            records=run.n_current,
            drifted=drifted[:MAX_NAMED],
            n_drifted=len(drifted),
            seconds=seconds,
        ),
    )
